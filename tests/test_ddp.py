"""CT under DistributedDataParallel: 2 CPU processes, gloo, MMSeg's train.py.

The launch is the MMEngine way, ``torchrun --nproc_per_node 2
<mmseg>/.mim/tools/train.py CFG --launcher pytorch``, with two shims that a
CPU-only machine needs and a GPU machine does not:

* mmengine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
  unconditionally, which fails without a GPU. ``Runner.setup_env`` skips
  ``init_dist`` when a process group already exists, so a small launcher
  (written below) creates the gloo group from torchrun's environment and then
  runs MMSeg's ``tools/train.py`` unchanged (``runpy``).
* MMEngine wraps the model with ``device_ids=[LOCAL_RANK]``, which torch's DDP
  rejects for a CPU module, so the config sets ``model_wrapper_cfg`` to
  MMEngine's default wrapper and arguments with ``device_ids=None``.
  ``find_unused_parameters`` is *not* set: DDP's default (False) applies, so a
  parameter without a gradient would stop the run at the second iteration.

The launcher also registers a probe hook that prints, per rank, the wrapper,
its ``find_unused_parameters``, the SyncBN count, each iteration's CT losses
and a hash of the parameters before and after training (one file per rank).
"""
import json
import math
import os
import os.path as osp
import socket
import subprocess
import sys

from e2e_utils import TOOLS, scalars, tiny_config

LAUNCHER = r'''
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
    return hashlib.sha1(flat.numpy().tobytes()).hexdigest()


@HOOKS.register_module()
class DDPProbeHook(Hook):
    def _say(self, **kw):
        # one file per rank: the ranks' stdout lines interleave
        rank = dist.get_rank()
        path = os.path.join(os.environ['DDP_PROBE_DIR'], f'rank{rank}.jsonl')
        with open(path, 'a') as f:
            f.write(json.dumps(dict(rank=rank, **kw)) + '\n')

    def before_train(self, runner):
        model = runner.model
        self._say(event='before', wrapper=type(model).__name__,
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

DDP_CONFIG = '''
_base_ = [{base!r}]
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval={iters}))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# MMEngine's default DDP wrapper and arguments, minus device_ids (a CPU
# module takes none); find_unused_parameters stays DDP's default, False.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False)
custom_hooks = [dict(type='ct_mmseg.ContrastiveTransformerHook'),
                dict(type='DDPProbeHook')]
'''
ITERS = 3


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_process_gloo_ddp_trains_ct_without_unused_parameters(
        demo_data, tmp_path):
    base = tiny_config(tmp_path, demo_data)
    cfg = tmp_path / 'ddp_ct.py'
    cfg.write_text(DDP_CONFIG.format(base=base, iters=ITERS))
    launcher = tmp_path / 'ddp_launch.py'
    launcher.write_text(LAUNCHER)
    work = tmp_path / 'work'
    probe_dir = tmp_path / 'probes'
    probe_dir.mkdir()
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',
               PYTHONWARNINGS='ignore', DDP_PROBE_DIR=str(probe_dir))
    out = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         '2', '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
         str(launcher), osp.join(TOOLS, 'train.py'), str(cfg),
         '--launcher', 'pytorch', '--work-dir', str(work)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]

    probes = [json.loads(line) for rank in (0, 1) for line in
              (probe_dir / f'rank{rank}.jsonl').read_text().splitlines()]
    before = {p['rank']: p for p in probes if p['event'] == 'before'}
    after = {p['rank']: p for p in probes if p['event'] == 'after'}
    iters = [p for p in probes if p['event'] == 'iter']
    assert sorted(before) == sorted(after) == [0, 1]
    for probe in before.values():
        assert probe['wrapper'] == 'MMDistributedDataParallel'
        assert probe['world'] == 2
        assert probe['find_unused'] is False
        assert probe['syncbn'] == 0
    # the config asks for no find_unused_parameters anywhere
    dumped = (work / 'ddp_ct.py').read_text()
    assert 'find_unused_parameters' not in dumped

    # every rank ran every iteration with finite CT losses of all 4 stages;
    # the ranks saw different data (their losses differ) ...
    per_rank = {r: [p['ct'] for p in iters if p['rank'] == r] for r in (0, 1)}
    for rank, records in per_rank.items():
        assert len(records) == ITERS, rank
        for record in records:
            assert sorted(record) == [f'aux_1.loss_ct_s{i}' for i in range(4)]
            assert all(math.isfinite(v) and v >= 0 for v in record.values())
    assert per_rank[0] != per_rank[1]
    # ... yet DDP kept their weights identical: gradients were all-reduced,
    # and training moved them
    assert before[0]['params'] == before[1]['params']
    assert after[0]['params'] == after[1]['params']
    assert after[0]['params'] != before[0]['params']

    # rank 0's log has the per-stage CT losses, counted in the total
    records = [r for r in scalars(work) if 'loss' in r]
    assert [r['step'] for r in records] == list(range(1, ITERS + 1))
    for record in records:
        for stage in range(4):
            assert math.isfinite(record[f'aux_1.loss_ct_s{stage}'])
    assert 'Contrastive Transformer: stages in_index=[0, 1, 2, 3]' in log
