"""ContrastiveTransformerHead: losses, gradients, edge cases, bad input."""
import pytest
import torch

from ct_mmseg.core import patch_masks, sample_candidates
from conftest import make_samples
from head_utils import CHANNELS, STRIDES, blocky_gt, build_head, features

IGN = 255


def assert_every_param_has_grad(head):
    for name, param in head.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_losses_per_stage_and_gradients_reach_features():
    head = build_head()
    feats = features(2, 64)
    losses = head.loss(feats, make_samples(blocky_gt(2, 64)), None)
    assert sorted(losses) == [f'loss_ct_s{i}' for i in range(4)]
    total = sum(losses.values())
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    assert_every_param_has_grad(head)
    assert feats[0].grad.abs().sum() > 0


def test_stage_loss_is_sum_over_classes_divided_by_stages_times_present():
    head = build_head(loss_decode=dict(type='PatchContrastLoss',
                                       clip_value=None))
    feats = features(2, 64, requires_grad=False)
    gt = blocky_gt(2, 64)
    losses = head.loss(feats, make_samples(gt), None)
    # recompute stage 0 by hand with the same seeded draws
    gen = torch.Generator().manual_seed(0)
    masks = patch_masks(gt, 4, feats[0].shape[-2:], 6, IGN)
    pos = sample_candidates(masks.positive, head.num_samples, gen)
    neg = sample_candidates(masks.negative, head.num_samples, gen)
    tokens = feats[0].permute(0, 2, 3, 1).reshape(-1, CHANNELS[0])
    emb = torch.nn.functional.normalize(head.projectors[0](tokens), dim=-1)
    per_class = head.loss_decode(emb[pos.index], pos.count, emb[neg.index],
                                 neg.count)
    present = len(torch.unique(gt))
    expected = per_class.loss.sum() / (4 * present)
    assert losses['loss_ct_s0'].item() == pytest.approx(expected.item(),
                                                        rel=1e-5)


@pytest.mark.parametrize('mode', ['cl', 'infonce'])
def test_an_ignore_index_that_is_a_class_id_is_ignored_like_255(mode):
    """ignore_index=5 of 6 classes (the decode head then ignores class 5):
    the same losses, gradients and statistics as the GT with its 5s written
    as 255 under ignore_index=255, and class 5 is never drawn."""
    gt = blocky_gt(2, 64)
    assert (gt == 5).any()
    results = []
    for labels, ignore in ((gt, 5), (gt.masked_fill(gt == 5, IGN), IGN)):
        torch.manual_seed(0)  # the same projection weights
        head = build_head(ignore_index=ignore, loss_decode=dict(
            type='PatchContrastLoss', mode=mode))
        feats = features(2, 64)
        losses = head.loss(feats, make_samples(labels), None)
        sum(losses.values()).backward()
        results.append((losses, feats[0].grad, head.step_stats,
                        head.step_present))
    (got, got_grad, got_stats, got_present), (want, want_grad, want_stats,
                                              want_present) = results
    assert sorted(got) == sorted(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert torch.equal(got_grad, want_grad)
    assert all(torch.equal(a, b) for a, b in zip(got_stats, want_stats))
    assert got_present.tolist() == want_present.tolist() == [True] * 5 + [
        False]
    assert all(t[:, 5].abs().sum() == 0 for t in got_stats)


@pytest.mark.parametrize('gt_kind', ['all_ignore', 'one_class', 'tiny',
                                     'class_absent', 'mixed_ignore'])
@pytest.mark.parametrize('mode', ['cl', 'infonce'])
def test_edge_cases_give_finite_loss_with_graph(gt_kind, mode):
    head = build_head(loss_decode=dict(type='PatchContrastLoss', mode=mode))
    size = 3 if gt_kind == 'tiny' else 64
    gt = blocky_gt(2, size, num_classes=3)
    if gt_kind == 'all_ignore':
        gt = torch.full_like(gt, IGN)
    elif gt_kind == 'one_class':
        gt = torch.full_like(gt, 2)
    elif gt_kind == 'mixed_ignore':
        gt[:, ::3] = IGN
    feats = features(2, size)
    losses = head.loss(feats, make_samples(gt), None)
    total = sum(losses.values())
    assert torch.isfinite(total)
    if gt_kind in ('all_ignore', 'one_class', 'tiny'):
        # no class has both positives and negatives: a zero loss ...
        assert total.item() == 0
    # ... that still reaches every parameter (DDP needs no unused params)
    total.backward()
    assert_every_param_has_grad(head)
    assert all(torch.isfinite(f.grad).all() for f in feats)


def test_huge_and_zero_features_stay_finite():
    head = build_head()
    gt = blocky_gt(2, 64)
    for scale in (0.0, 1e4):
        feats = features(2, 64, scale=scale)
        total = sum(head.loss(feats, make_samples(gt), None).values())
        total.backward()
        assert torch.isfinite(total)
        assert all(torch.isfinite(f.grad).all() for f in feats)


def test_stage_weight_zero_switches_a_stage_off():
    head = build_head(stage_weights=[1, 0, 1, 1])
    losses = head.loss(features(2, 64), make_samples(blocky_gt(2, 64)), None)
    assert losses['loss_ct_s1'].item() == 0
    assert losses['loss_ct_s0'].item() > 0


def test_swin_like_padded_grid_is_handled():
    # 60 px image: Swin pads to 64, so grids are 15x15, 8x8, 4x4, 2x2
    head = build_head()
    feats = [torch.randn(1, c, -(-60 // s), -(-60 // s), requires_grad=True)
             for c, s in zip(CHANNELS, STRIDES)]
    losses = head.loss(feats, make_samples(blocky_gt(1, 60)), None)
    assert torch.isfinite(sum(losses.values()))


def test_wrong_label_values_are_reported():
    head = build_head()
    gt = blocky_gt(1, 64)
    gt[0, 0, 0] = 9
    with pytest.raises(ValueError, match='gt_sem_seg.*num_classes=6'):
        head.loss(features(1, 64), make_samples(gt), None)


def test_wrong_feature_channels_name_the_key():
    head = build_head()
    feats = features(1, 64)
    feats[2] = torch.randn(1, 31, 4, 4)
    with pytest.raises(ValueError, match=r'in_channels\[2\]=32'):
        head.loss(feats, make_samples(blocky_gt(1, 64)), None)
    with pytest.raises(IndexError, match='in_index'):
        head.loss(feats[:2], make_samples(blocky_gt(1, 64)), None)


@pytest.mark.parametrize('kwargs,match', [
    (dict(strides=[4, 8]), 'strides has 2 entries'),
    (dict(in_index=[0, 1, 2]), 'in_index has 3 entries'),
    (dict(stage_weights=[1, 1]), 'stage_weights'),
    (dict(in_channels=96), 'in_channels must be a non-empty list'),
    (dict(num_samples=1), 'num_samples'),
    (dict(proj_channels=0), 'proj_channels'),
    (dict(loss_decode=dict(type='PatchContrastLoss', mode='x')), 'mode'),
])
def test_bad_head_config_names_the_key(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build_head(**kwargs)


def test_predict_is_refused_and_forward_gives_normalised_embeddings():
    head = build_head()
    outs = head.forward(features(1, 64, requires_grad=False))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 16, 16), (1, 16, 8, 8),
                                              (1, 16, 4, 4), (1, 16, 2, 2)]
    assert torch.allclose(outs[0].norm(dim=1), torch.ones(1, 16, 16))
    with pytest.raises(RuntimeError, match='training-only'):
        head.predict(None, None, None)


def test_bf16_autocast_loss_is_finite():
    head = build_head()
    feats = [f.detach().bfloat16().requires_grad_() for f in features(2, 64)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        total = sum(head.loss(feats, make_samples(blocky_gt(2, 64)),
                              None).values())
    total.backward()
    assert total.dtype == torch.float32 and torch.isfinite(total)
    assert_every_param_has_grad(head)
