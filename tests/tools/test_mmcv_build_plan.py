"""tools/mmcv_build_plan.py: which mmcv ops tools/setup_env.sh compiles.

The tool runs before mmcv (and so ct_mmseg) can be imported, so it stays a
standalone script and is tested as a command, in a subprocess. The GPU
branch is tested without a GPU: the facts (GPU visible, toolkit, torch's
CUDA version) are given on the command line or to a fake ``nvcc``; the
shell lines it prints are evaluated by bash as setup_env.sh does, and what a
child process of the build then sees is read.
"""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from e2e_utils import REPO

PLAN = osp.join(REPO, 'tools', 'mmcv_build_plan.py')
SETUP = osp.join(REPO, 'tools', 'setup_env.sh')


def run_plan(*args, want_cuda=False, **env):
    """``python tools/mmcv_build_plan.py args`` with CT_MMCV_CUDA set or not
    and ``env`` added: the finished process (stdout: the shell lines,
    stderr: what was decided)."""
    env = dict({k: v for k, v in os.environ.items() if k != 'CT_MMCV_CUDA'},
               **env)
    if want_cuda:
        env['CT_MMCV_CUDA'] = '1'
    return subprocess.run([sys.executable, PLAN, *map(str, args)],
                          capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize('gpu,home,want,mode,says', [
    (False, None, False, 'cpu', 'no GPU visible'),
    (True, None, False, 'cpu', 'a GPU is visible but no CUDA toolkit'),
    (True, '/usr/local/cuda', False, 'cpu', 'CT_MMCV_CUDA=1 builds its CUDA'),
    (True, '/usr/local/cuda', True, 'cuda', "building mmcv's CUDA ops"),
    (False, '/usr/local/cuda', True, 'cuda', "building mmcv's CUDA ops"),
])
def test_decision(gpu, home, want, mode, says):
    out = run_plan('--gpu-visible', int(gpu), '--cuda-home', home or '',
                   '--torch-cuda', '12.1', '--toolkit-cuda',
                   '12.4' if home else '', want_cuda=want)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f'MMCV_BUILD_MODE={mode}'
    assert says in out.stderr
    assert out.stderr.count('\n') == 1  # one line
    if mode == 'cpu':
        # hiding the GPU is what makes mmcv's setup.py take the CPU branch
        assert out.stdout.splitlines()[1:] == [
            "export CUDA_VISIBLE_DEVICES=''", 'export FORCE_CUDA=0']
    else:
        assert out.stdout.splitlines()[1:] == ['export FORCE_CUDA=1']


@pytest.mark.parametrize('home,torch_cuda,toolkit,match', [
    (None, '12.1', None, 'no CUDA toolkit was found'),
    ('/usr/local/cuda', None, '12.1', 'CPU build'),
    ('/usr/local/cuda', '12.1', '13.0', 'toolkit .* is 13.0 and torch was '
     'built with CUDA 12.1'),
])
def test_cuda_ops_asked_for_but_impossible(home, torch_cuda, toolkit, match):
    out = run_plan('--gpu-visible', 1, '--cuda-home', home or '',
                   '--torch-cuda', torch_cuda or '', '--toolkit-cuda',
                   toolkit or '', want_cuda=True)
    assert out.returncode == 2
    assert out.stdout == ''
    assert re.search(match, out.stderr)


def child_env_after(args, want_cuda=False):
    """Evaluate the plan's output in bash, as setup_env.sh does, and print
    what a process started afterwards (mmcv's build) sees."""
    env = {k: v for k, v in os.environ.items() if k != 'CT_MMCV_CUDA'}
    env['CUDA_VISIBLE_DEVICES'] = '0'  # a GPU machine
    if want_cuda:
        env['CT_MMCV_CUDA'] = '1'
    script = (f'set -e; plan=$({sys.executable} {PLAN} {args}); '
              'eval "$plan"; echo "mode=$MMCV_BUILD_MODE"; '
              'env | grep -E "^(CUDA_VISIBLE_DEVICES|FORCE_CUDA)=" | sort')
    return subprocess.run(['bash', '-c', script], capture_output=True,
                          text=True, env=env, timeout=60)


def test_gpu_without_toolkit_builds_cpu_ops_with_the_gpu_hidden():
    out = child_env_after("--gpu-visible 1 --cuda-home '' --torch-cuda 12.1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['mode=cpu', 'CUDA_VISIBLE_DEVICES=',
                                  'FORCE_CUDA=0']
    assert out.stderr.count('\n') == 1 and 'no CUDA toolkit' in out.stderr


def test_cuda_ops_on_request_with_a_toolkit():
    out = child_env_after('--gpu-visible 1 --cuda-home /opt/cuda '
                          '--toolkit-cuda 12.4 --torch-cuda 12.1',
                          want_cuda=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['mode=cuda', 'CUDA_VISIBLE_DEVICES=0',
                                  'FORCE_CUDA=1']


def test_impossible_request_stops_the_setup():
    out = child_env_after("--gpu-visible 1 --cuda-home '' --torch-cuda 12.1",
                          want_cuda=True)
    assert out.returncode != 0  # set -e: setup_env.sh fails at this step
    assert 'no CUDA toolkit was found' in out.stderr


def test_toolkit_detection_runs_nvcc(tmp_path):
    """torch's CUDA_HOME guess is not enough: the toolkit counts only if its
    nvcc runs (a leftover wrapper pointing nowhere does not)."""
    good = tmp_path / 'good' / 'bin'
    broken = tmp_path / 'broken' / 'bin'
    for folder, body in ((good, 'echo "Cuda compilation tools, release 12.4, '
                                'V12.4.131"'),
                         (broken, 'exit 127')):
        folder.mkdir(parents=True)
        nvcc = folder / 'nvcc'
        nvcc.write_text(f'#!/bin/sh\n{body}\n')
        nvcc.chmod(0o755)
    # the toolkit folder as torch finds it (CUDA_HOME), the rest given
    facts = ('--gpu-visible', 1, '--torch-cuda', '12.1')
    out = run_plan(*facts, want_cuda=True, CUDA_HOME=str(good.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == 'MMCV_BUILD_MODE=cuda'
    assert f'CUDA toolkit in {good.parent}' in out.stderr
    for home in (broken.parent, tmp_path / 'missing'):
        out = run_plan(*facts, want_cuda=True, CUDA_HOME=str(home))
        assert out.returncode == 2
        assert 'no CUDA toolkit was found' in out.stderr


def test_setup_env_applies_the_plan_before_compiling_mmcv():
    with open(SETUP) as f:
        text = f.read()
    applied = text.index('eval "$plan"')
    assert text.index('tools/mmcv_build_plan.py') < applied
    assert applied < text.index('-m pip wheel --no-deps')
    # the wheel cache is keyed by torch version and ops, not shared blindly
    assert re.search(r'cache=.*torch-\$TORCH.*\$MMCV_BUILD_MODE', text)
