#!/usr/bin/env bash
# Build (or refresh) the ct_mmseg environment in a virtualenv.
#
# Safe to run twice: every step checks what is already there. The exact versions
# come from one constraints file (setup.py only states ranges). The compiled mmcv
# wheel is kept in $CT_WHEEL_CACHE, one folder per (torch, python, CPU/CUDA ops),
# so a second set-up (or a fresh venv) with the same torch skips the ~6 minute
# compile, and a venv with another torch never gets a wheel built for a different one.
#
#   CT_VENV        virtualenv folder             (default: <repo>/.venv)
#   CT_PYTHON      interpreter to create it       (default: python3)
#   CT_CONSTRAINTS the pinned stack               (default: tools/constraints.txt;
#                  tools/constraints-oldest.txt is the oldest supported stack)
#   CT_WHEEL_CACHE where built mmcv wheels are    (default: ~/.cache/ct_mmseg/wheels)
#   CT_MMCV_CUDA   1: compile mmcv's CUDA ops (needs the CUDA toolkit); default: its
#                  CPU ops, which is all CT needs (tools/mmcv_build_plan.py decides)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CT_VENV:-$REPO/.venv}"
PYTHON="${CT_PYTHON:-python3}"
WHEELS="${CT_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ct_mmseg/wheels}"
CONSTRAINTS="$(realpath "${CT_CONSTRAINTS:-$REPO/tools/constraints.txt}")"
START=$(date +%s)

step() { printf '\n[ct_mmseg setup] (%ds) %s\n' "$(( $(date +%s) - START ))" "$*"; }
fail() { printf '\n[ct_mmseg setup] FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "command on line $LINENO exited with $? (see the output above)"' ERR

# The version a package is pinned to in $CONSTRAINTS ("name==version" lines).
pin() {
  local version
  version=$(sed -n "s/^$1==\([^ #]*\).*/\1/p" "$CONSTRAINTS")
  [ -n "$version" ] || fail "$CONSTRAINTS pins no version of $1"
  echo "$version"
}
TORCH=$(pin torch); TORCHVISION=$(pin torchvision); MMENGINE=$(pin mmengine)
MMCV=$(pin mmcv); MMSEG=$(pin mmsegmentation); MMPRETRAIN=$(pin mmpretrain)
MIM=$(pin openmim)

if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtualenv $VENV"
  "$PYTHON" -m venv "$VENV" || fail "could not create a venv with $PYTHON"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS")

# have NAME==VERSION ... | NAME ...: all installed (at that version, if given).
have() { "$PY" - "$@" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, _, want = spec.partition('==')
    if version(name) != (want or version(name)):
        sys.exit(1)
PYEOF
}

if ! have "torch==$TORCH" "torchvision==$TORCHVISION"; then
  step "installing torch $TORCH + torchvision $TORCHVISION"
  "${PIP[@]}" "torch==$TORCH" "torchvision==$TORCHVISION" || fail "torch/torchvision install"
fi

# torch may pull setuptools >= 81, which has no pkg_resources; mmcv's build, mmengine
# and mim need it (the constraints file caps setuptools below 81).
if ! "$PY" -c "import pkg_resources, wheel" 2>/dev/null; then
  step "installing build tools with pkg_resources (setuptools<81)"
  "${PIP[@]}" -q "setuptools<81" wheel || fail "setuptools pin"
fi

if ! have "mmengine==$MMENGINE" ftfy regex; then
  step "installing mmengine $MMENGINE and mmseg's undeclared imports"
  "${PIP[@]}" "mmengine==$MMENGINE" ftfy regex || fail "mmengine install"
fi

if ! have "mmcv==$MMCV" || ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  # CPU or CUDA ops: one line says which and why (tools/mmcv_build_plan.py)
  plan=$("$PY" "$REPO/tools/mmcv_build_plan.py") || fail "mmcv build plan"
  MMCV_BUILD_MODE=cpu
  eval "$plan"
  pytag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  cache="$WHEELS/mmcv-$MMCV/torch-$TORCH-$pytag-$MMCV_BUILD_MODE"
  mkdir -p "$cache"
  wheel=$(ls "$cache"/mmcv-"$MMCV"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    step "compiling mmcv $MMCV ($MMCV_BUILD_MODE ops, about 6 minutes on 2 cores)"
    build=$(mktemp -d)
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation \
        -d "$build" "mmcv==$MMCV" || fail "mmcv sdist download"
    tar -xzf "$build/mmcv-$MMCV.tar.gz" -C "$build"
    # torch 2.14's headers need C++20 (torch 2.1's build with it too); mmcv 2.1.0
    # hard-codes c++14/17.
    sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$build/mmcv-$MMCV/setup.py"
    # CFLAGS replaces Python's default -O3: keep an optimised build.
    (cd "$build/mmcv-$MMCV" && CFLAGS="-O2 -g0 -DNDEBUG -fwrapv" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        MMCV_WITH_OPS=1 "$PY" -m pip wheel --no-deps --no-build-isolation -w "$cache" .) \
        || fail "mmcv compile"
    rm -rf "$build"
    wheel=$(ls "$cache"/mmcv-"$MMCV"-*.whl | head -n1)
  else
    step "reusing compiled mmcv wheel $wheel"
  fi
  "${PIP[@]}" --no-deps "$wheel" || fail "mmcv wheel install"
  "${PIP[@]}" -q addict yapf opencv-python packaging pyyaml termcolor || fail "mmcv runtime deps"
fi

# Everything else in one resolver run: openmim's declared deps (opendatalab/openxlab)
# pin an old setuptools, so openmim goes in with --no-deps and its light deps by name.
if ! have "mmsegmentation==$MMSEG" "mmpretrain==$MMPRETRAIN" "openmim==$MIM" \
    scipy scikit-learn pytest hypothesis matplotlib tensorboard seaborn; then
  step "installing mmsegmentation $MMSEG, mmpretrain $MMPRETRAIN, scipy, scikit-learn, mim's and the tests' tools"
  "${PIP[@]}" "mmsegmentation==$MMSEG" "mmpretrain==$MMPRETRAIN" importlib_metadata \
      scipy scikit-learn click colorama model-index rich tabulate pandas requests \
      pytest hypothesis matplotlib tensorboard seaborn \
      || fail "mmsegmentation/mmpretrain/tools install"
  "${PIP[@]}" -q --no-deps "openmim==$MIM" || fail "openmim install"
fi

# Run from / so that the repository in the current folder does not count as installed.
installed_from=$(cd / && "$PY" -c 'import ct_mmseg, os; print(os.path.dirname(os.path.dirname(os.path.realpath(ct_mmseg.__file__))))' 2>/dev/null || true)
if [ "$installed_from" != "$(realpath "$REPO")" ]; then
  step "installing ct_mmseg (editable)"
  "${PIP[@]}" -q --no-build-isolation --no-deps -e "$REPO" || fail "ct_mmseg install"
fi

step "checking the stack"
"$PY" - <<'PYEOF' || fail "import check"
import mmcv.ops, mmseg, mmpretrain.models, mmengine, torch, pkg_resources  # noqa: F401
import scipy, sklearn  # noqa: F401
import ct_mmseg
print('torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmseg', mmseg.__version__,
      '| mmengine', mmengine.__version__, '| ct_mmseg', ct_mmseg.__version__)
PYEOF
"$VENV/bin/mim" --version >/dev/null || fail "mim does not run"
step "ready: activate with 'source $VENV/bin/activate'"
