#!/usr/bin/env bash
# The test command: builds/refreshes the environment (tools/setup_env.sh, safe
# to run again) and runs the whole test suite on the CPU.
#   bash tools/run_tests.sh [extra pytest args]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CT_VENV:-$REPO/.venv}"
bash "$REPO/tools/setup_env.sh"
cd "$REPO"
export CUDA_VISIBLE_DEVICES=""  # the suite is CPU-only by design
start=$(date +%s)
"$VENV/bin/python" -m pytest -q "$@"
echo "[ct_mmseg tests] finished in $(( $(date +%s) - start )) s"
