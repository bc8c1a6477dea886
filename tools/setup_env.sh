#!/usr/bin/env bash
# Build (or refresh) the ct_mmseg environment in a virtualenv.
#
# Safe to run twice: every step checks what is already there. The compiled mmcv
# wheel is kept in $CT_WHEEL_CACHE (default ~/.cache/ct_mmseg/wheels) so a second
# machine set-up (or a fresh venv) skips the ~6 minute compile.
#
#   CT_VENV        virtualenv folder            (default: <repo>/.venv)
#   CT_PYTHON      interpreter to create it      (default: python3)
#   CT_WHEEL_CACHE where the built mmcv wheel is (default: ~/.cache/ct_mmseg/wheels)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CT_VENV:-$REPO/.venv}"
PYTHON="${CT_PYTHON:-python3}"
WHEELS="${CT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ct_mmseg/wheels}"
CONSTRAINTS="$REPO/tools/constraints.txt"

step() { printf '\n[ct_mmseg setup] %s\n' "$*"; }
fail() { printf '\n[ct_mmseg setup] FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "command on line $LINENO exited with $? (see the output above)"' ERR

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV" || fail "could not create a venv with $PYTHON"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS")

have() { "$PY" - "$@" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split('==')
    if version(name) != want:
        sys.exit(1)
PYEOF
}

if ! have torch==2.14.1 torchvision==0.29.1; then
  step "installing torch 2.14.1 + torchvision 0.29.1"
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1 || fail "torch/torchvision install"
fi

# torch pulls a new setuptools; mmcv's build, mmengine and mim need pkg_resources.
step "pinning build tools (setuptools<81)"
"${PIP[@]}" -q "setuptools>=77.0.3,<81" wheel || fail "setuptools pin"

if ! have mmengine==0.10.7; then
  step "installing mmengine 0.10.7 and mmseg's undeclared imports"
  "${PIP[@]}" mmengine==0.10.7 ftfy regex || fail "mmengine install"
fi

if ! have mmcv==2.1.0 || ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  mkdir -p "$WHEELS"
  wheel=$(ls "$WHEELS"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    step "compiling mmcv 2.1.0 (CPU ops, about 6 minutes on 2 cores)"
    build=$(mktemp -d)
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation \
        -d "$build" mmcv==2.1.0 || fail "mmcv sdist download"
    tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
    # torch >= 2.x headers need C++20; mmcv 2.1.0 hard-codes c++14/17.
    sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$build/mmcv-2.1.0/setup.py"
    (cd "$build/mmcv-2.1.0" && CFLAGS="-O2 -g0 -DNDEBUG -fwrapv" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        MMCV_WITH_OPS=1 "$PY" -m pip wheel --no-deps --no-build-isolation -w "$WHEELS" .) \
        || fail "mmcv compile"
    rm -rf "$build"
    wheel=$(ls "$WHEELS"/mmcv-2.1.0-*.whl | head -n1)
  else
    step "reusing compiled mmcv wheel $wheel"
  fi
  "${PIP[@]}" --no-deps "$wheel" || fail "mmcv wheel install"
  "${PIP[@]}" addict yapf opencv-python packaging pyyaml termcolor || fail "mmcv runtime deps"
fi

if ! have mmsegmentation==1.2.2 mmpretrain==1.2.0 openmim==0.3.9; then
  step "installing mmsegmentation 1.2.2, mmpretrain 1.2.0, openmim 0.3.9"
  "${PIP[@]}" mmsegmentation==1.2.2 mmpretrain==1.2.0 importlib_metadata \
      || fail "mmsegmentation/mmpretrain install"
  # openmim's declared deps (opendatalab/openxlab) pin an old setuptools: keep them out.
  "${PIP[@]}" click colorama model-index rich tabulate pandas requests || fail "mim deps"
  "${PIP[@]}" --no-deps openmim==0.3.9 || fail "openmim install"
fi

step "installing ct_mmseg (editable) and the test tools"
"${PIP[@]}" -q --no-build-isolation --no-deps -e "$REPO" || fail "ct_mmseg install"
# seaborn: imported by MMSeg's tools/analysis_tools/analyze_logs.py
"${PIP[@]}" -q pytest hypothesis matplotlib tensorboard seaborn || fail "test tools"

step "checking the stack"
"$PY" - <<'PYEOF' || fail "import check"
import mmcv.ops, mmseg, mmpretrain.models, mmengine, torch, pkg_resources  # noqa: F401
import ct_mmseg
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmseg', mmseg.__version__,
      '| mmengine', mmengine.__version__, '| ct_mmseg', ct_mmseg.__version__)
PYEOF
"$VENV/bin/mim" --version >/dev/null || fail "mim does not run"
step "ready: activate with 'source $VENV/bin/activate'"
