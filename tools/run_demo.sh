#!/usr/bin/env bash
# The main job: set up the environment, then train and evaluate Swin + CT.
#   bash tools/run_demo.sh            # demo data (built-in synthetic Potsdam)
#   DATA_ROOT=data/potsdam CONFIG=configs/ct/swin-tiny_upernet_ct_4xb4-80k_potsdam-512x512.py \
#       bash tools/run_demo.sh        # your converted ISPRS Potsdam
# Training goes through `mim train mmsegmentation` (MMSeg's tools/train.py),
# evaluation through MMSeg's tools/test.py; outputs land in $WORK_DIR.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CT_VENV:-$REPO/.venv}"
CONFIG="${CONFIG:-configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py}"
DATA_ROOT="${DATA_ROOT:-data/potsdam_demo}"
WORK_DIR="${WORK_DIR:-work_dirs/$(basename "${CONFIG%.py}")}"

bash "$REPO/tools/setup_env.sh"
cd "$REPO"
source "$VENV/bin/activate"
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"

if [ ! -d "$DATA_ROOT/img_dir/train" ]; then
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
python "$(python -c 'import mmseg, os; print(os.path.join(os.path.dirname(mmseg.__file__), ".mim", "tools", "test.py"))')" \
    "$CONFIG" "$ckpt" --work-dir "$WORK_DIR/test" \
    --cfg-options "test_dataloader.dataset.data_root=$DATA_ROOT"
echo "[ct_mmseg demo] training $(( trained - start )) s, evaluation $(( $(date +%s) - trained )) s;" \
     "logs, checkpoints and metrics in $WORK_DIR"
