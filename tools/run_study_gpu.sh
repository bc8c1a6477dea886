#!/usr/bin/env bash
# The Dubai study (docs/results.md) on one GPU machine: many runs at once.
#   bash tools/run_study_gpu.sh [RAW_DUBAI_DIR]
# Made for the lent machine (1 GPU, 16 cores, Python 3.12, its own torch):
# installs the OpenMMLab wheels of gpu-wheels/ next to that torch (no index
# needed), converts the raw Dubai set (default ../shared/data/dubai_aerial,
# or shared/data/dubai_aerial inside the checkout), then runs the primary
# study and its secondary arms with JOBS runs at a time on GPU 0 (2 CPU
# threads each). Results go to studies/dubai_matched_gpu/, beside the CPU
# study's files, each result file recording the machine (GPU included): the
# tables never pair a GPU run with a CPU run.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
JOBS="${JOBS:-8}"
RAW="${1:-}"
for candidate in "$RAW" shared/data/dubai_aerial ../shared/data/dubai_aerial; do
  if [ -n "$candidate" ] && [ -d "$candidate/Tile 1" ]; then RAW="$candidate"; break; fi
done
[ -d "$RAW/Tile 1" ] || { echo "no raw Dubai set (Tile 1 ...) found; pass its folder" >&2; exit 1; }
if ! python3 -c "import mmcv.ops, mmseg" 2>/dev/null; then
  WHEELS=""
  for candidate in shared/gpu-wheels ../shared/gpu-wheels; do
    [ -d "$candidate" ] && WHEELS="$candidate" && break
  done
  [ -n "$WHEELS" ] || { echo "mmseg is not installed and no gpu-wheels/ found" >&2; exit 1; }
  python3 -m pip install -q --no-index --no-deps --target /tmp/ct_site "$WHEELS"/*.whl
  export PYTHONPATH="/tmp/ct_site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$REPO:${PYTHONPATH:-}" OMP_NUM_THREADS=2
[ -d data/dubai_aerial/img_dir/test_whole ] || \
  python3 tools/dataset_converters/dubai_aerial.py "$RAW" -o data/dubai_aerial
ids=$(for _ in $(seq "$JOBS"); do printf '0 '; done)
for spec in studies/dubai_matched.yaml studies/dubai_matched_secondary.yaml; do
  # shellcheck disable=SC2086
  python3 tools/run_study.py "$spec" --jobs "$JOBS" --gpu-ids $ids \
      --output studies/dubai_matched_gpu \
      --work-root work_dirs/studies/dubai_matched_gpu --keep-going
done
