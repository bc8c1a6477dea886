"""Helpers for the end-to-end tests that drive MMSeg's tools in subprocesses.

Kept apart from the test modules so several of them can share one way of
running a tool, making the demo data and reading MMEngine's logs.
"""
import glob
import json
import math
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import List, Sequence, Tuple

from ct_mmseg.mmseg_tools import mmseg_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.dirname(mmseg_tool('train.py'))  # MMSeg's bundled tools/
FRAGMENT = osp.join(REPO, 'configs', '_base_', 'contrastive_transformer.py')
DEMO = osp.join(REPO, 'configs', 'ct', 'demo')
MIM = osp.join(osp.dirname(sys.executable), 'mim')
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


# The tiny configs' training data: random 64 px crops of ``data_root`` (a
# config text that defines ``data_root`` and ``crop_size``).
TINY_TRAIN_DATALOADER = '''\
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(
    data_root=data_root, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomCrop', crop_size=crop_size),
        dict(type='PackSegInputs')]))
'''
TINY = '''
_base_ = [{base!r}]
data_root = {data_root!r}
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=16),
    auxiliary_head=dict(in_channels=64, channels=16))
''' + TINY_TRAIN_DATALOADER + '''\
val_dataloader = dict(num_workers=0, dataset=dict(
    data_root=data_root, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(64, 64), keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')]))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=2, max_keep_ckpts=3))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
                                dict(type='TensorboardVisBackend')])
'''


def tiny_config(tmp_path, data_root, ct=True) -> str:
    """A tiny Swin-UPerNet demo config (CT or baseline) on ``data_root``."""
    base = 'swin-tiny_upernet_ct_potsdam-demo.py' if ct else \
        'swin-tiny_upernet_potsdam-demo.py'
    path = tmp_path / ('tiny_ct.py' if ct else 'tiny_base.py')
    path.write_text(TINY.format(base=osp.join(DEMO, base),
                                data_root=data_root))
    return str(path)


# --------------------------------------------------------------------------- #
# two gloo processes through MMSeg's tools/train.py
# --------------------------------------------------------------------------- #
GLOO_LAUNCHER = r'''
"""torchrun entry: gloo process group first, then MMSeg's tools/train.py."""
import hashlib
import json
import os
import runpy
import sys

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

dist.init_process_group('gloo')  # env:// from torchrun


def param_hash(model):
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    return hashlib.sha1(flat.float().numpy().tobytes()).hexdigest()


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Per rank, one JSON line per event: the runner, the wrapper, its
    find_unused_parameters, the SyncBN count and a hash of the parameters
    before and after training, and each iteration's CT losses."""

    def _say(self, **kw):
        # one file per rank: the ranks' stdout lines interleave
        rank = dist.get_rank()
        path = os.path.join(os.environ['RANK_PROBE_DIR'], f'rank{rank}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(dict(rank=rank, **kw)) + '\n')

    def before_train(self, runner):
        model = runner.model
        self._say(event='before', runner=type(runner).__name__,
                  wrapper=type(model).__name__,
                  find_unused=bool(getattr(model, 'find_unused_parameters',
                                           None)),
                  world=dist.get_world_size(),
                  syncbn=sum(isinstance(m, torch.nn.SyncBatchNorm)
                             for m in model.modules()),
                  params=param_hash(model))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self._say(event='iter', iter=runner.iter,
                  ct={k: float(v) for k, v in outputs.items()
                      if 'loss_ct' in k})

    def after_train(self, runner):
        self._say(event='after', params=param_hash(runner.model))


sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def train_on_two_gloo_ranks(config, work_dir, tmp_path
                            ) -> Tuple[List[dict], str]:
    """``torchrun --nproc_per_node 2`` of MMSeg's tools/train.py on the CPU.

    mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``,
    which fails without a GPU; ``Runner.setup_env`` skips it when a process
    group exists, so a small launcher creates the gloo group from torchrun's
    environment and then runs tools/train.py unchanged (``runpy``). The
    config must list ``dict(type='RankProbeHook')`` in its custom hooks.

    Returns:
        tuple: the probe records of both ranks (see ``RankProbeHook``) and
        the launch's stdout + stderr.
    """
    launcher = osp.join(str(tmp_path), 'gloo_launch.py')
    with open(launcher, 'w') as f:
        f.write(GLOO_LAUNCHER)
    probe_dir = osp.join(str(tmp_path), 'probes')
    os.makedirs(probe_dir)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore', RANK_PROBE_DIR=probe_dir)
    out = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
         launcher, osp.join(TOOLS, 'train.py'), str(config),
         '--launcher', 'pytorch', '--work-dir', str(work_dir)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True,
        timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    records = []
    for rank in (0, 1):
        with open(osp.join(probe_dir, f'rank{rank}.jsonl')) as f:
            records += [json.loads(line) for line in f.read().splitlines()]
    return records, log


# What the two-rank tests add to the tiny CT config: ``{iters}`` iterations
# (a checkpoint at the end), gloo, CT's statistics hook and the rank probe.
TWO_RANK_CT_CONFIG = '''
_base_ = [{base!r}]
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval={iters}))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
custom_hooks = [dict(type='ct_mmseg.ContrastiveTransformerHook'),
                dict(type='RankProbeHook')]
'''


def train_tiny_ct_on_two_gloo_ranks(extra, name, data_root, tmp_path,
                                    iters) -> Tuple[str, List[dict], str]:
    """:func:`train_on_two_gloo_ranks` of the tiny CT config with
    :data:`TWO_RANK_CT_CONFIG` and ``extra`` (config text: the wrapper or
    the strategy) on top, written as ``tmp_path/name``.

    Returns:
        tuple: the work_dir, the probe records of both ranks and the
        launch's stdout + stderr.
    """
    cfg = tmp_path / name
    cfg.write_text(TWO_RANK_CT_CONFIG.format(
        base=tiny_config(tmp_path, data_root), iters=iters) + extra)
    work = tmp_path / 'work'
    probes, log = train_on_two_gloo_ranks(cfg, work, tmp_path)
    return work, probes, log


def check_two_rank_ct_training(probes, iters) -> Tuple[dict, dict]:
    """What a CT run on two ranks must show in its probe records: both ranks
    probed before and after training; each ran ``iters`` iterations with
    finite, non-negative CT losses of all four stages; the ranks' weights
    were identical before and after training (one model), and training
    moved them.

    Returns:
        tuple: ``{rank: probe before training}`` and ``{rank: [CT losses of
        each iteration]}``.
    """
    before = {p['rank']: p for p in probes if p['event'] == 'before'}
    after = {p['rank']: p for p in probes if p['event'] == 'after'}
    assert sorted(before) == sorted(after) == [0, 1]
    per_rank = {rank: [p['ct'] for p in probes
                       if p['event'] == 'iter' and p['rank'] == rank]
                for rank in (0, 1)}
    for rank, records in per_rank.items():
        assert len(records) == iters, rank
        for record in records:
            assert sorted(record) == [f'aux_1.loss_ct_s{i}' for i in range(4)]
            assert all(math.isfinite(v) and v >= 0 for v in record.values())
    assert before[0]['params'] == before[1]['params']
    assert after[0]['params'] == after[1]['params']
    assert after[0]['params'] != before[0]['params']
    return before, per_rank
