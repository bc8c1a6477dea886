"""Resuming a CT run reproduces the uninterrupted run, with and without the
cross-image memory (restored from the checkpoint exactly); checkpoints load
with ``weights_only=True``.

MMEngine 0.10.7 does not save or restore torch's global RNG state: on
``--resume`` it re-seeds from ``randomness.seed`` and skips the data already
seen (replaying the data pipeline, so the crops match), but every torch
random draw after the resume starts from the freshly seeded RNG. Anything in
the model that draws from the global RNG (dropout, drop path, and CT's
candidate draws when ``ct_head.seed`` is None) therefore differs after a
resume. With ``ct_head.seed`` set, the head re-seeds its private generator
every training iteration from ``(seed, iteration, rank)`` (the iteration
MMEngine writes into the message hub), so its draws depend on nothing else
and a resumed run draws exactly what the uninterrupted run drew.

The end-to-end test switches the model's other random layers off (drop path,
dropout), so the CT draws are the only randomness in the forward pass.
"""
import math
import os
import subprocess
import sys

import pytest
import torch
from mmengine.logging import MessageHub

import ct_mmseg.models.ct_head as ct_head_module
from conftest import make_samples
from head_utils import blocky_gt, build_head, features
from e2e_utils import TOOLS, scalars, tiny_config

DETERMINISTIC = [
    'ct_head.seed=1234',
    # MMEngine cannot replay these draws on resume: off, so CT is the only
    # random part of the forward pass
    'model.backbone.drop_path_rate=0.0',
    'model.decode_head.dropout_ratio=0.0',
    'model.auxiliary_head.dropout_ratio=0.0',
    'train_cfg.val_interval=1000',
    'default_hooks.checkpoint.interval=2',
]


@pytest.fixture
def hub():
    """A message hub as MMEngine's runner has one; 'iter' removed after."""
    hub = MessageHub.get_instance('test_resume_hub')
    yield hub
    hub.pop_info('iter', None)


@pytest.fixture
def draws(monkeypatch):
    """Record the candidate indices the head draws."""
    seen = []
    original = ct_head_module.sample_candidates

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out.index.clone())
        return out
    monkeypatch.setattr(ct_head_module, 'sample_candidates', recording)
    return seen


def draws_at(head, hub, draws, step):
    """The head's draws (all stages) at training iteration ``step``."""
    del draws[:]
    hub.update_info('iter', step)
    head.loss(features(2, 64), make_samples(blocky_gt(2, 64)), None)
    return [d.clone() for d in draws]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_seeded_draws_depend_only_on_seed_iteration_and_rank(
        hub, draws, monkeypatch):
    head = build_head(seed=7)
    history = [draws_at(head, hub, draws, step) for step in range(3)]
    assert len(history[0]) == 8  # positives and negatives of 4 stages
    # every iteration draws anew ...
    assert not same(history[1], history[2])
    # ... a head that skipped iterations 0 and 1 (a resumed run) draws at
    # iteration 2 exactly what the uninterrupted head drew there
    fresh = build_head(seed=7)
    assert same(draws_at(fresh, hub, draws, 2), history[2])
    # calling again in the same iteration repeats the draws
    assert same(draws_at(head, hub, draws, 2), history[2])
    # another seed, or another rank, draws differently
    assert not same(draws_at(build_head(seed=8), hub, draws, 2), history[2])
    monkeypatch.setattr(ct_head_module, 'get_rank', lambda: 1)
    assert not same(draws_at(head, hub, draws, 2), history[2])


def test_without_training_loop_the_seeded_stream_continues(draws):
    # no iteration in the current message hub: seeded once, then a stream
    # (what tests and analysis tools get)
    MessageHub.get_instance('test_resume_no_iter')
    head = build_head(seed=7)
    gt = make_samples(blocky_gt(2, 64))
    head.loss(features(2, 64), gt, None)
    first = [d.clone() for d in draws]
    del draws[:]
    head.loss(features(2, 64), gt, None)
    assert not same(draws, first)
    del draws[:]
    build_head(seed=7).loss(features(2, 64), gt, None)
    assert same(draws, first)


def run_together(commands, cwd, timeout=600):
    """Like ``run`` for several commands at once; each gets one thread."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONWARNINGS='ignore',
               OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([str(a) for a in cmd], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cmd in commands]
    logs = []
    for proc in procs:
        log, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, log[-6000:]
        logs.append(log)
    return logs


def losses_by_step(work):
    records = [r for r in scalars(work) if 'loss' in r]
    return {r['step']: {k: v for k, v in r.items() if 'loss' in k}
            for r in records}


# A memory of 16 entries filled by 4 per step is still filling at the
# resume (iteration 2), so a memory lost there would change the later losses
# and the final memory.
MEMORY = ['ct_head.memory_size=16', 'ct_head.memory_per_step=4']


def memory_buffers(path):
    """The CT memory's buffers of a checkpoint (in its CT section)."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    ct = state.get('ct_mmseg', {}).get('state_dict', {})
    return {k: v for k, v in ct.items() if '.memory.' in k}


@pytest.mark.parametrize('options', [[], MEMORY], ids=['ct', 'memory'])
def test_resume_reproduces_the_uninterrupted_run(
        demo_data, tmp_path, options):
    cfg = tiny_config(tmp_path, demo_data)
    train = [sys.executable, f'{TOOLS}/train.py', cfg]
    whole, parts = tmp_path / 'whole', tmp_path / 'parts'
    fixed = [*DETERMINISTIC, *options]
    # the uninterrupted run and the first part are independent: run them
    # side by side (2 cores)
    run_together(
        [[*train, '--work-dir', whole, '--cfg-options', *fixed,
          'train_cfg.max_iters=4'],
         [*train, '--work-dir', parts, '--cfg-options', *fixed,
          'train_cfg.max_iters=2']], cwd=tmp_path)
    # the same thread count as the uninterrupted run: same float reductions
    log, = run_together([[*train, '--work-dir', parts, '--resume',
                          '--cfg-options', *fixed,
                          'train_cfg.max_iters=4']], cwd=tmp_path)
    assert 'resumed epoch: 0, iter: 2' in log

    expected, resumed = losses_by_step(whole), losses_by_step(parts)
    assert sorted(expected) == sorted(resumed) == [1, 2, 3, 4]
    ct_keys = [f'aux_1.loss_ct_s{i}' for i in range(4)]
    assert any(expected[step][k] > 0 for step in (3, 4) for k in ct_keys)
    for step in (1, 2, 3, 4):
        assert sorted(resumed[step]) == sorted(expected[step])
        for key, value in expected[step].items():
            assert math.isfinite(value)
            # Same CPU kernels, same thread count, same inputs, same draws:
            # the runs compute identical floats (MMEngine logs them at full
            # precision), so 1e-6 is only a margin. Different draws moved the
            # CT losses of iterations 3-4 by 0.05-1.3 % (measured with
            # ct_head.seed=None, and with a generator seeded once).
            assert resumed[step][key] == pytest.approx(value, rel=1e-6,
                                                       abs=1e-9), (step, key)

    check_weights_only_loading(parts / 'iter_2.pth')
    if options:
        saved = memory_buffers(parts / 'iter_2.pth')
        fills = [v for k, v in saved.items() if '.fill_s' in k]
        assert fills and any(int(f.sum()) > 0 for f in fills)
        assert all(int(f.max()) < 16 for f in fills)  # still filling
        final, expected_final = (memory_buffers(parts / 'iter_4.pth'),
                                 memory_buffers(whole / 'iter_4.pth'))
        assert sorted(final) == sorted(expected_final) and final
        for key, value in expected_final.items():
            assert torch.equal(final[key], value), key
    else:
        assert not memory_buffers(parts / 'iter_2.pth')


def check_weights_only_loading(path):
    """A CT checkpoint is plain data: torch's safe unpickler reads it with
    no allow-list. Its CT tensors travel in the ``ct_mmseg`` section (the
    resume above put them back)."""
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint['meta']['iter'] == 2
    assert {'state_dict', 'optimizer', 'message_hub'} <= set(checkpoint)
    ct_weights = [k for k in checkpoint['ct_mmseg']['state_dict']
                  if k.startswith('auxiliary_head.1.projectors.')]
    assert len(ct_weights) == 4 * 4  # 4 stages x (2 Linear x weight, bias)
    assert not any('projectors' in k for k in checkpoint['state_dict'])
    buffers = checkpoint['message_hub']['log_scalars']
    assert buffers and all(isinstance(v, dict) for v in buffers.values())


def test_allow_list_loader_reads_mmengine_checkpoints(tmp_path):
    """A checkpoint in MMEngine's own format (a baseline run's: message hub
    of HistoryBuffer objects) is refused by plain weights_only loading and
    read by the loader ct_mmseg registers for plain file paths."""
    import pickle

    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    from ct_mmseg.checkpoint import (load_from_local_weights_only,
                                     weights_only_needs_allow_list)
    path = tmp_path / 'mmengine_format.pth'
    torch.save(dict(meta=dict(iter=2), state_dict=dict(w=torch.ones(2)),
                    message_hub=dict(log_scalars=dict(
                        loss=HistoryBuffer([1.0, 0.5], [1, 1])))), path)
    if not weights_only_needs_allow_list():
        # torch < 2.6 (no scoped allow-list; MMEngine's loader unpickles
        # fully by default): nothing is registered, MMEngine's loader reads it
        assert CheckpointLoader.load_checkpoint(str(path))['meta']['iter'] == 2
        return
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)
    checkpoint = load_from_local_weights_only(str(path))
    assert checkpoint['message_hub']['log_scalars']['loss'].current() == 0.5
    # MMEngine's own loading path (used by --resume and load_from) goes
    # through the loader ct_mmseg registered for plain file paths
    via_mmengine = CheckpointLoader.load_checkpoint(str(path))
    assert torch.equal(via_mmengine['state_dict']['w'], torch.ones(2))