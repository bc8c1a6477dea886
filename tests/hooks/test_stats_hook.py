"""ContrastiveTransformerHook: CT statistics computed from the data."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from ct_mmseg.core import patch_masks
from ct_mmseg.hooks import ContrastiveTransformerHook
from conftest import make_samples
from head_utils import STRIDES, blocky_gt, build_head, features

CLASSES = ('a', 'b', 'c', 'd', 'e', 'f')


def fake_runner(head, max_iters):
    model = torch.nn.Sequential(head)
    fake_runner.count = getattr(fake_runner, 'count', 0) + 1
    return SimpleNamespace(
        model=model, hooks=[], iter=0, max_iters=max_iters,
        message_hub=MessageHub.get_instance(
            f'test_stats_hook_{fake_runner.count}'),
        train_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(metainfo=dict(classes=CLASSES))))


def test_statistics_are_the_means_of_what_the_head_saw():
    head = build_head()
    hook = ContrastiveTransformerHook(interval=2, per_class=True)
    runner = fake_runner(head, max_iters=4)
    hook.before_train(runner)
    gts = [blocky_gt(2, 64), torch.full((2, 64, 64), 3)]
    gts[1][:, :32] = 255  # class 3 only; half the image ignored
    expected_pos = torch.zeros(len(STRIDES))
    for step, gt in enumerate(gts):
        head.loss(features(2, 64), make_samples(gt), None)
        for s, stride in enumerate(STRIDES):
            masks = patch_masks(gt, stride, (64 // stride, 64 // stride), 6,
                                255)
            expected_pos[s] += masks.positive.sum().item() / len(gts)
        runner.iter = step  # hooks see the 0-based iteration
        hook.after_train_iter(runner, step)
    hub = runner.message_hub
    for s in range(len(STRIDES)):
        assert hub.get_scalar(f'train/ct_s{s}/pos').current() == \
            pytest.approx(expected_pos[s].item())
        for key in ('neg', 'pairs', 'cos_pos', 'cos_neg', 'no_pos'):
            value = hub.get_scalar(f'train/ct_s{s}/{key}').current()
            assert value == value  # not NaN
    # step 2 holds only class 3, which has positives at every stage; step 1
    # has blocks of 16 px, so at stride 32 some present classes have none
    assert hub.get_scalar('train/ct_s0/no_pos').current() == 0
    assert hub.get_scalar('train/ct_s3/no_pos').current() > 0
    # per-class names come from the dataset's metainfo
    assert hub.get_scalar('train/ct_s0/d/pos').current() > 0
    cos = hub.get_scalar('train/ct_s0/cos_pos').current()
    assert -1 <= cos <= 1


def test_purity_and_memory_figures_by_hand():
    # (1, 32, 32): columns 0-23 class 1, 24-31 class 2. At tau 0.75 the one
    # stride-32 patch (3/4 class 1) is the only positive the threshold adds.
    # A memory of 6 filled by up to 4 per step holds per stage after steps 1
    # and 2: class 1 (48, 12, 2, 1 positives) 4/6, 4/6, 2/4, 1/2; class 2
    # (16, 4, 0, 0 positives) 4/6, 4/6, 0/0, 0/0
    gt = torch.full((1, 32, 32), 1)
    gt[:, :, 24:] = 2
    head = build_head(positive_purity=0.75, memory_size=6,
                      memory_per_step=4)
    head.train()
    hook = ContrastiveTransformerHook(interval=2, per_class=True)
    runner = fake_runner(head, max_iters=2)
    hook.before_train(runner)
    for step in range(2):
        head.loss(features(1, 32), make_samples(gt), None)
        runner.iter = step
        hook.after_train_iter(runner, step)
    hub = runner.message_hub
    assert [hub.get_scalar(f'train/ct_s{s}/gained_pos').current()
            for s in range(4)] == [0, 0, 0, 1]
    assert hub.get_scalar('train/ct_s3/b/gained_pos').current() == 1
    # the interval's mean over its two steps: (2 + 4) / 2 at stage 2 for
    # class 1, (8 + 12) / 2 = 10 at stage 0 over both classes
    assert hub.get_scalar('train/ct_s2/b/memory_fill').current() == 3
    assert hub.get_scalar('train/ct_s0/memory_fill').current() == 10


def test_statistics_can_be_switched_off():
    head = build_head(collect_stats=False)
    head.loss(features(1, 64), make_samples(blocky_gt(1, 64)), None)
    assert head.step_stats is None
    hook = ContrastiveTransformerHook(stats=False)
    runner = fake_runner(build_head(), max_iters=1)
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    assert 'train/ct_s0/pos' not in runner.message_hub.log_scalars


def test_training_a_ct_config_without_the_ct_head_is_refused():
    """Runner.from_cfg ignores runner_type: CT would silently be off."""
    from mmengine.config import Config
    runner = fake_runner(build_head(), max_iters=1)
    runner.model = torch.nn.Sequential(torch.nn.Linear(1, 1))
    runner.cfg = Config(dict(ct_head=dict(type='ContrastiveTransformerHead')))
    with pytest.raises(RuntimeError, match='ct_head.*RUNNERS.build'):
        ContrastiveTransformerHook().before_train(runner)
    runner.cfg = Config(dict())  # no CT asked for: a warning, no error
    ContrastiveTransformerHook().before_train(runner)
