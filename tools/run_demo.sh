#!/usr/bin/env bash
# The main job: set up the environment, then train and evaluate Swin + CT.
#   bash tools/run_demo.sh            # real imagery: the Dubai subset shipped in
#                                     # ct_mmseg/datasets/dubai_mini (CC0)
#   DEMO=potsdam bash tools/run_demo.sh   # the built-in synthetic Potsdam
#   DATA_ROOT=data/potsdam CONFIG=configs/ct/swin-tiny_upernet_ct_4xb4-80k_potsdam-512x512.py \
#       bash tools/run_demo.sh        # your converted ISPRS Potsdam (a CONFIG
#                                     # naming potsdam takes the Potsdam route)
# Training goes through `mim train mmsegmentation` (MMSeg's tools/train.py),
# evaluation through MMSeg's tools/test.py; outputs land in $WORK_DIR.
# Dubai route: the shipped subset is converted by ct_mmseg's converter into
# data/dubai_mini (once; delete the folder to convert again), the model is
# tested on the held-out tile's whole images with the predicted label PNGs
# kept (tools/test.py --out) and the per-class IoU written, and
# tools/show_predictions.py draws image | ground truth | prediction to
# $WORK_DIR/test/predictions.png (IoU table beside it, predictions_iou.md).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CT_VENV:-$REPO/.venv}"
if [ -z "${DEMO:-}" ]; then
  case "${CONFIG:-}" in *potsdam*) DEMO=potsdam ;; *) DEMO=dubai ;; esac
fi
case "$DEMO" in
  dubai)
    CONFIG="${CONFIG:-configs/ct/demo/swin-tiny_upernet_ct_dubai-demo.py}"
    DATA_ROOT="${DATA_ROOT:-data/dubai_mini}" ;;
  potsdam)
    CONFIG="${CONFIG:-configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py}"
    DATA_ROOT="${DATA_ROOT:-data/potsdam_demo}" ;;
  *) echo "[ct_mmseg demo] DEMO=$DEMO: use DEMO=dubai or DEMO=potsdam" >&2
     exit 1 ;;
esac
WORK_DIR="${WORK_DIR:-work_dirs/$(basename "${CONFIG%.py}")}"
MINI="ct_mmseg/datasets/dubai_mini"

bash "$REPO/tools/setup_env.sh"
cd "$REPO"
source "$VENV/bin/activate"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"

if [ "$DEMO" = dubai ]; then
  if [ ! -d "$DATA_ROOT/img_dir/test_whole" ]; then
    if [ "$DATA_ROOT" = "data/dubai_mini" ]; then
      echo "[ct_mmseg demo] converting the shipped Dubai subset ($MINI) into $DATA_ROOT"
      python tools/dataset_converters/dubai_aerial.py "$MINI" -o "$DATA_ROOT" \
          --clip_size 384 --stride_size 192 \
          --train_tiles 1 4 5 6 7 --val_tiles 2 --test_tiles 8
    else
      echo "[ct_mmseg demo] $DATA_ROOT/img_dir/test_whole not found: convert the Dubai" \
           "aerial set with tools/dataset_converters/dubai_aerial.py first (docs/dubai_aerial.md)" >&2
      exit 1
    fi
  fi
elif [ ! -d "$DATA_ROOT/img_dir/train" ]; then
  if [ "$DATA_ROOT" = "data/potsdam_demo" ]; then
    echo "[ct_mmseg demo] no Potsdam on disk: preparing the built-in demo dataset"
    python tools/prepare_demo_data.py --data-root "$DATA_ROOT"
  else
    echo "[ct_mmseg demo] $DATA_ROOT/img_dir/train not found: convert ISPRS Potsdam with" \
         "MMSeg's tools/dataset_converters/potsdam.py first (docs/potsdam.md)" >&2
    exit 1
  fi
fi

start=$(date +%s)
mim train mmsegmentation "$CONFIG" --work-dir "$WORK_DIR" \
    --cfg-options "train_dataloader.dataset.data_root=$DATA_ROOT" \
                  "val_dataloader.dataset.data_root=$DATA_ROOT" \
                  "test_dataloader.dataset.data_root=$DATA_ROOT"
trained=$(date +%s)
ckpt="$WORK_DIR/$(cat "$WORK_DIR/last_checkpoint" | xargs basename)"
TEST_PY="$(python -c 'import mmseg, os; print(os.path.join(os.path.dirname(mmseg.__file__), ".mim", "tools", "test.py"))')"
if [ "$DEMO" = potsdam ]; then
  python "$TEST_PY" "$CONFIG" "$ckpt" --work-dir "$WORK_DIR/test" \
      --cfg-options "test_dataloader.dataset.data_root=$DATA_ROOT"
  echo "[ct_mmseg demo] training $(( trained - start )) s, evaluation $(( $(date +%s) - trained )) s;" \
       "logs, checkpoints and metrics in $WORK_DIR"
  exit 0
fi

TEST_DIR="$WORK_DIR/test"
rm -rf "$TEST_DIR/pred"  # no stale predictions from an earlier run
python "$TEST_PY" "$CONFIG" "$ckpt" --work-dir "$TEST_DIR" --out "$TEST_DIR/pred" \
    --cfg-options "test_dataloader.dataset.data_root=$DATA_ROOT" \
                  "test_evaluator.results_file=$TEST_DIR/per_class_iou.json"
tested=$(date +%s)
iters="$(basename "$ckpt" .pth)"
python tools/show_predictions.py "$TEST_DIR/pred" \
    --img-dir "$DATA_ROOT/img_dir/test_whole" --ann-dir "$DATA_ROOT/ann_dir/test_whole" \
    --out "$TEST_DIR/predictions.png" --metric-file "$TEST_DIR/per_class_iou.json" \
    --title "$(basename "${CONFIG%.py}"): ${iters#iter_} training iterations; the held-out test split of $DATA_ROOT"
echo "[ct_mmseg demo] training $(( trained - start )) s, evaluation $(( tested - trained )) s," \
     "picture $(( $(date +%s) - tested )) s; logs, checkpoints and metrics in $WORK_DIR," \
     "the picture in $TEST_DIR/predictions.png"
