"""The head's options beyond the paper, through ``head.loss``: mixed
patches (``positive_purity``) counted by hand, and the cross-image memory
(``memory_size``) filled, read and restored from a state dict."""
import pytest
import torch
from mmengine.logging import MessageHub

from conftest import make_samples
from head_utils import build_head, features

IGN = 255


def three_quarter_gt():
    """(1, 32, 32): columns 0-23 class 1, columns 24-31 class 2.

    Per stage (stride 4, 8, 16, 32; grids 8x8, 4x4, 2x2, 1x1), by hand:
    class 1 pure patches 48, 12, 2, 0; class 2 pure 16, 4, 0, 0. The one
    stride-32 patch is 3/4 class 1; the right stride-16 patches are half
    class 1, half class 2. Patches with no pixel of class 1 (its
    negatives): 16, 4, 0, 0.
    """
    gt = torch.full((1, 32, 32), 1, dtype=torch.long)
    gt[:, :, 24:] = 2
    return gt


def stats_after_step(gt, **options):
    head = build_head(**options)
    head.train()
    head.loss(features(1, 32), make_samples(gt), None)
    return head.step_stats


def test_purity_one_counts_the_papers_pure_patches():
    stats = stats_after_step(three_quarter_gt())
    assert stats.positives[:, 1].tolist() == [48, 12, 2, 0]
    assert stats.positives[:, 2].tolist() == [16, 4, 0, 0]
    assert stats.negatives[:, 1].tolist() == [16, 4, 0, 0]
    assert stats.gained_positives.sum() == 0


@pytest.mark.parametrize('tau,stage3_class1', [(0.75, 1), (0.76, 0)])
def test_purity_threshold_adds_the_mixed_patches_by_hand(tau,
                                                         stage3_class1):
    stats = stats_after_step(three_quarter_gt(), positive_purity=tau)
    # 768 of 1024 pixels are class 1: a positive at tau 0.75, not at 0.76;
    # the half-and-half stride-16 patches are positives of neither class
    assert stats.positives[:, 1].tolist() == [48, 12, 2, stage3_class1]
    assert stats.positives[:, 2].tolist() == [16, 4, 0, 0]
    assert stats.gained_positives[:, 1].tolist() == [0, 0, 0, stage3_class1]
    assert stats.gained_positives[:, 2].sum() == 0
    # negatives stay patches with no pixel of the class
    assert stats.negatives[:, 1].tolist() == [16, 4, 0, 0]


def test_purity_counts_valid_pixels_only():
    # the stride-32 patch: 3/4 class 1, 1/4 ignore. The paper (tau 1) takes
    # no patch with an ignore pixel; tau 0.9 takes it (all valid pixels
    # are class 1)
    gt = torch.full((1, 32, 32), 1, dtype=torch.long)
    gt[:, :, 24:] = IGN
    assert stats_after_step(gt).positives[3, 1] == 0
    stats = stats_after_step(gt, positive_purity=0.9)
    assert stats.positives[3, 1] == 1
    assert stats.gained_positives[3, 1] == 1


@pytest.mark.parametrize('tau', [0.5, 0.0, 1.5, float('nan')])
def test_bad_purity_names_the_key(tau):
    with pytest.raises(ValueError, match='positive_purity'):
        build_head(positive_purity=tau)


@pytest.mark.parametrize('options,match', [
    (dict(memory_size=-1), 'memory_size'),
    (dict(memory_size=8, memory_per_step=0), 'memory_per_step'),
])
def test_bad_memory_options_name_the_key(options, match):
    with pytest.raises(ValueError, match=match):
        build_head(**options)


def test_memory_fills_by_per_step_and_is_bounded():
    gt = three_quarter_gt()
    head = build_head(memory_size=6, memory_per_step=4)
    head.train()
    fills = []
    for _ in range(3):
        head.loss(features(1, 32), make_samples(gt), None)
        fills.append(head.step_stats.memory_fill.clone())
    # class 1 adds min(4, positives) per stage and step, up to 6 entries:
    # stage 0 (48 positives) 4, 6, 6; stage 2 (2 positives) 2, 4, 6;
    # stage 3 (no positive) stays empty
    assert [f[0, 1].item() for f in fills] == [4, 6, 6]
    assert [f[2, 1].item() for f in fills] == [2, 4, 6]
    assert [f[3, 1].item() for f in fills] == [0, 0, 0]
    assert [f[1, 2].item() for f in fills] == [4, 6, 6]
    # absent classes get nothing
    assert fills[-1][:, [0, 3, 4, 5]].sum() == 0


def test_memory_is_not_written_outside_training():
    head = build_head(memory_size=6, memory_per_step=4)
    head.eval()
    head.loss(features(1, 32), make_samples(three_quarter_gt()), None)
    assert head.memory.fill().sum() == 0


@pytest.fixture
def hub():
    """A message hub as MMEngine's runner has one: the head's draws then
    depend only on (seed, iteration), as in training."""
    hub = MessageHub.get_instance('test_head_options_hub')
    yield hub
    hub.pop_info('iter', None)


def test_memory_changes_the_loss_and_a_state_dict_restores_it(hub):
    gt = three_quarter_gt()
    hub.update_info('iter', 0)
    options = dict(memory_size=8, memory_per_step=4)
    head = build_head(**options)
    head.train()
    first = head.loss(features(1, 32), make_samples(gt), None)
    restored = build_head(**options)
    restored.load_state_dict(head.state_dict())
    restored.train()
    fresh = build_head(**options)
    fresh.load_state_dict({k: v for k, v in head.state_dict().items()
                           if '.memory.' not in k and
                           not k.startswith('memory.')}, strict=False)
    fresh.train()
    hub.update_info('iter', 1)
    second = head.loss(features(1, 32), make_samples(gt), None)
    again = restored.loss(features(1, 32), make_samples(gt), None)
    hub.update_info('iter', 0)
    empty = fresh.loss(features(1, 32), make_samples(gt), None)
    for key in second:
        assert torch.equal(second[key], again[key]), key
    # with an empty memory and the same draws, the first step again
    for key in first:
        assert torch.equal(first[key], empty[key]), key
    hub.update_info('iter', 0)
    with_memory = head.loss(features(1, 32), make_samples(gt), None)
    assert any(not torch.equal(with_memory[k], first[k]) for k in first)
