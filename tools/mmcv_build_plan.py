"""Decide how tools/setup_env.sh compiles mmcv: CPU ops or CUDA ops.

mmcv's setup.py compiles its CUDA kernels whenever
``torch.cuda.is_available()`` (or FORCE_CUDA=1), and that build needs the
CUDA toolkit (nvcc). A pip-installed torch sees the GPU but brings no
toolkit, so on a GPU machine mmcv's build takes the CUDA path and fails. CT and the paper's models use none of mmcv's
CUDA kernels, so the default is the CPU-ops build, with the GPU hidden from
the build; the CUDA ops are built only when the user asks (CT_MMCV_CUDA=1)
and the toolkit is there.

Prints shell assignments for the build, e.g.::

    MMCV_BUILD_MODE=cpu
    export CUDA_VISIBLE_DEVICES=''
    export FORCE_CUDA=0

and one line saying what was decided on stderr. Exits 2 when the CUDA ops are
asked for but cannot be built. The facts (GPU visible, toolkit folder, torch's
CUDA version) are read from torch unless given as options, which is how the
decision is tested without a GPU.
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
from typing import NamedTuple, Optional


class BuildPlan(NamedTuple):
    mode: str  # 'cpu' or 'cuda'
    env: dict  # variables for mmcv's build
    message: str  # one line for the user


class PlanError(RuntimeError):
    pass


def decide(gpu_visible: bool, cuda_home: Optional[str],
           torch_cuda: Optional[str], want_cuda: bool,
           toolkit_cuda: Optional[str] = None) -> BuildPlan:
    """The mmcv build for these facts.

    Args:
        gpu_visible (bool): ``torch.cuda.is_available()``.
        cuda_home (str | None): the CUDA toolkit folder whose ``bin/nvcc``
            runs (torch's ``cpp_extension.CUDA_HOME``), None if none.
        torch_cuda (str | None): ``torch.version.cuda`` (None: a CPU torch).
        want_cuda (bool): the user asked for mmcv's CUDA ops (CT_MMCV_CUDA=1).
        toolkit_cuda (str | None): the toolkit's CUDA version (``nvcc
            --version``), if known.
    """
    if want_cuda:
        if torch_cuda is None:
            raise PlanError('CT_MMCV_CUDA=1, but this torch is a CPU build: '
                            "mmcv's CUDA ops need a CUDA torch")
        if cuda_home is None:
            raise PlanError(
                'CT_MMCV_CUDA=1, but no CUDA toolkit was found (no working '
                'nvcc; set CUDA_HOME to the toolkit folder), or unset '
                "CT_MMCV_CUDA to build mmcv's CPU ops, which is all CT needs")
        if toolkit_cuda and toolkit_cuda.split('.')[0] != \
                torch_cuda.split('.')[0]:
            raise PlanError(
                f'CT_MMCV_CUDA=1, but the CUDA toolkit in {cuda_home} is '
                f'{toolkit_cuda} and torch was built with CUDA {torch_cuda}: '
                'point CUDA_HOME at a toolkit of the same major version')
        return BuildPlan('cuda', {'FORCE_CUDA': '1'},
                         f"building mmcv's CUDA ops with the CUDA toolkit in "
                         f'{cuda_home} (CT_MMCV_CUDA=1)')
    # Hiding the GPU is what makes mmcv's setup.py take its CPU branch.
    env = {'CUDA_VISIBLE_DEVICES': '', 'FORCE_CUDA': '0'}
    if gpu_visible and cuda_home is None:
        why = ('a GPU is visible but no CUDA toolkit (nvcc) was found: '
               "building mmcv's CPU ops (CT needs none of its CUDA kernels)")
    elif gpu_visible:
        why = ("building mmcv's CPU ops (CT needs none of its CUDA kernels); "
               f'CT_MMCV_CUDA=1 builds its CUDA ops with {cuda_home}')
    else:
        why = "no GPU visible: building mmcv's CPU ops"
    return BuildPlan('cpu', env, why)


def toolkit_version(cuda_home: Optional[str]) -> Optional[str]:
    """The CUDA version of ``cuda_home/bin/nvcc``, None if it does not run
    (torch's CUDA_HOME guess may name a folder without a working nvcc)."""
    if not cuda_home:
        return None
    nvcc = os.path.join(cuda_home, 'bin', 'nvcc')
    try:
        out = subprocess.run([nvcc, '--version'], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'release (\d+\.\d+)', out.stdout)
    return found.group(1) if out.returncode == 0 and found else None


def torch_facts():
    """(gpu_visible, cuda_home, torch_cuda, toolkit_cuda) of this machine."""
    import torch
    from torch.utils.cpp_extension import CUDA_HOME
    toolkit = toolkit_version(CUDA_HOME)
    return (torch.cuda.is_available(), CUDA_HOME if toolkit else None,
            torch.version.cuda, toolkit)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--gpu-visible', choices=['0', '1'],
                        help='override torch.cuda.is_available()')
    parser.add_argument('--cuda-home',
                        help="override the toolkit folder ('' = none)")
    parser.add_argument('--torch-cuda',
                        help="override torch.version.cuda ('' = CPU torch)")
    parser.add_argument('--toolkit-cuda', default='',
                        help='with --cuda-home: the toolkit CUDA version')
    args = parser.parse_args(argv)
    given = (args.gpu_visible, args.cuda_home, args.torch_cuda)
    if None in given:
        gpu, home, cuda, toolkit = torch_facts()
    if args.gpu_visible is not None:
        gpu = args.gpu_visible == '1'
    if args.cuda_home is not None:
        home = args.cuda_home or None
        toolkit = args.toolkit_cuda or None
    if args.torch_cuda is not None:
        cuda = args.torch_cuda or None
    want = os.environ.get('CT_MMCV_CUDA', '0') not in ('', '0')
    try:
        plan = decide(gpu, home, cuda, want, toolkit)
    except PlanError as error:
        print(f'[ct_mmseg setup] {error}', file=sys.stderr)
        return 2
    print(f'[ct_mmseg setup] {plan.message}', file=sys.stderr)
    print(f'MMCV_BUILD_MODE={plan.mode}')
    for key, value in plan.env.items():
        print(f'export {key}={shlex.quote(value)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
