"""Helpers for the end-to-end tests that drive MMSeg's tools in subprocesses.

Kept apart from the test modules so several of them can share one way of
running a tool, making the demo data and reading MMEngine's logs.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys
from typing import List, Sequence

import mmseg

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')
POTSDAM_CLASSES = ('impervious_surface', 'building', 'low_vegetation',
                   'tree', 'car', 'clutter')


def run(args: Sequence, cwd, timeout: int = 600) -> str:
    """Run a command on the CPU; fail the test with its log tail if it
    fails. Returns stdout + stderr.

    One OpenMP thread per process (unless OMP_NUM_THREADS is set): on a
    small shared CPU, OpenMP threads spin-waiting for each other made the
    tiny trainings several times slower than a single thread.
    """
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONWARNINGS='ignore')
    env.setdefault('OMP_NUM_THREADS', '1')
    out = subprocess.run([str(a) for a in args], cwd=str(cwd), env=env,
                         capture_output=True, text=True, timeout=timeout)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    return log


def prepare_demo_potsdam(root, num_train: int = 2, num_val: int = 1,
                         tile_size: int = 512) -> str:
    """Synthetic raw ISPRS zips -> MMSeg's converter -> ``root/data``.

    With ``tile_size`` 512 every tile is exactly one 512 px crop, so the
    dataset has ``num_train`` train and ``num_val`` val images.
    """
    run([sys.executable, osp.join(REPO, 'tools', 'prepare_demo_data.py'),
         '--data-root', osp.join(root, 'data'), '--raw-dir',
         osp.join(root, 'raw'), '--tile-size', tile_size, '--num-train',
         num_train, '--num-val', num_val], cwd=REPO)
    return osp.join(str(root), 'data')


def scalars(work_dir) -> List[dict]:
    """Every record of MMEngine's scalar log(s) (vis_data/scalars.json)."""
    files = sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                      'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    records = []
    for name in files:
        with open(name) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records
