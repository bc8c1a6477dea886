"""SoftCrossEntropyLoss and SoftDiceLoss against hand-computed values.

Both are the paper's segmentation loss (soft CE, smoothing 0.05, + dice,
smooth 0.05) with GeoSeg's semantics; see ct_mmseg/models/losses.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from conftest import make_samples
from ct_mmseg.models.losses import (SoftCrossEntropyLoss, SoftDiceLoss,
                                    soft_cross_entropy, soft_dice_loss)

IGNORE = 255
EPS = 0.05  # the authors' smoothing of both losses


def pixels(logits, labels):
    """(K,) logits per pixel and labels -> (1, K, 1, P), (1, 1, P)."""
    pred = torch.tensor(logits, dtype=torch.float64).T[None, :, None, :]
    return pred, torch.tensor(labels)[None, None, :]


# ---------------------------------------------------------- soft CE
def test_soft_ce_by_hand():
    # logits (ln 3, 0): p = (3/4, 1/4); target 0
    pred, label = pixels([[math.log(3), 0.0]], [0])
    nll = math.log(4 / 3)
    sum_neg_log = math.log(4 / 3) + math.log(4)
    expected = (1 - EPS) * nll + EPS / 2 * sum_neg_log
    got = SoftCrossEntropyLoss(smooth_factor=EPS)(pred, label)
    assert got.item() == pytest.approx(expected, abs=1e-12)
    # the same as PyTorch's label smoothing
    ref = F.cross_entropy(pred, label, label_smoothing=EPS)
    assert got.item() == pytest.approx(ref.item(), abs=1e-12)


def test_soft_ce_uniform_logits_give_log_k_for_any_smoothing():
    num_classes = 6
    pred = torch.zeros(2, num_classes, 3, 3, dtype=torch.float64)
    label = torch.randint(0, num_classes, (2, 3, 3))
    for eps in (0.0, EPS, 0.5):
        got = SoftCrossEntropyLoss(smooth_factor=eps)(pred, label)
        assert got.item() == pytest.approx(math.log(num_classes), abs=1e-12)


def test_soft_ce_without_smoothing_is_plain_ce():
    torch.manual_seed(0)
    pred = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    label = torch.randint(0, 4, (2, 3, 5))
    got = SoftCrossEntropyLoss(smooth_factor=0.0)(pred, label)
    assert got.item() == pytest.approx(F.cross_entropy(pred, label).item(),
                                       abs=1e-12)


def test_soft_ce_ignored_pixels_count_zero_in_the_mean():
    # two equal pixels, the second ignored
    pred, label = pixels([[math.log(3), 0.0], [math.log(3), 0.0]],
                         [0, IGNORE])
    one = soft_cross_entropy(pred[..., :1], label[..., :1], EPS).item()
    per_pixel = soft_cross_entropy(pred, label, EPS, IGNORE)
    assert per_pixel[0, 0, 1].item() == 0.0
    # GeoSeg / MMSeg default: mean over ALL pixels
    all_pixels = SoftCrossEntropyLoss(smooth_factor=EPS)(pred, label)
    assert all_pixels.item() == pytest.approx(one / 2, abs=1e-12)
    # PyTorch's convention: mean over the labelled pixels (MMSeg's
    # weight_reduce_loss adds float32 eps to that count: rel 1e-6)
    labelled = SoftCrossEntropyLoss(smooth_factor=EPS,
                                    avg_non_ignore=True)(pred, label)
    assert labelled.item() == pytest.approx(one, rel=1e-6)
    ref = F.cross_entropy(pred, label, ignore_index=IGNORE,
                          label_smoothing=EPS)
    assert labelled.item() == pytest.approx(ref.item(), rel=1e-6)


def test_soft_ce_ignore_index_from_the_head_and_weights():
    head_ignore = 6  # GeoSeg's boundary label
    pred, label = pixels([[math.log(3), 0.0], [0.0, 0.0]], [0, head_ignore])
    loss = SoftCrossEntropyLoss(smooth_factor=EPS)
    first = soft_cross_entropy(pred[..., :1], label[..., :1], EPS).item()
    # the decode head passes its ignore_index
    assert loss(pred, label, ignore_index=head_ignore).item() == \
        pytest.approx(first / 2, abs=1e-12)
    # pixel weights (MMSeg's pixel sampler) multiply the pixel losses
    weight = torch.tensor([[[3.0, 1.0]]], dtype=torch.float64)
    assert loss(pred, label, weight=weight,
                ignore_index=head_ignore).item() == pytest.approx(
                    3 * first / 2, abs=1e-12)


def test_soft_ce_registry_weight_and_name():
    loss = MODELS.build(dict(type='SoftCrossEntropyLoss', smooth_factor=EPS,
                             loss_weight=0.4, loss_name='loss_aux_ce'))
    assert loss.loss_name == 'loss_aux_ce'
    pred, label = pixels([[math.log(3), 0.0]], [0])
    single = soft_cross_entropy(pred, label, EPS).mean().item()
    assert loss(pred, label).item() == pytest.approx(0.4 * single,
                                                     abs=1e-12)
    with pytest.raises(ValueError, match='smooth_factor'):
        SoftCrossEntropyLoss(smooth_factor=1.0)


# ------------------------------------------------------------- dice
UNIFORM_2 = [[0.0, 0.0], [0.0, 0.0]]  # two pixels, p = (1/2, 1/2)


def test_dice_both_classes_present():
    # per class: inter = 1/2, card = (1/2 + 1/2) + 1 = 2
    pred, label = pixels(UNIFORM_2, [0, 1])
    dice = (2 * 0.5 + EPS) / (2 + EPS)
    got = SoftDiceLoss(smooth=EPS)(pred, label)
    assert got.item() == pytest.approx(1 - dice, abs=1e-12)


def test_dice_absent_class_is_zeroed_but_counted_in_the_mean():
    # class 0: inter = 1, card = 1 + 2 = 3; class 1 absent -> 0
    pred, label = pixels(UNIFORM_2, [0, 0])
    dice0 = (2 * 1 + EPS) / (3 + EPS)
    got = SoftDiceLoss(smooth=EPS)(pred, label)
    assert got.item() == pytest.approx((1 - dice0) / 2, abs=1e-12)


def test_dice_ignored_pixels_leave_prediction_and_target():
    # only pixel 0 counts: class 0 inter = 1/2, card = 1/2 + 1
    pred, label = pixels(UNIFORM_2, [0, IGNORE])
    dice0 = (2 * 0.5 + EPS) / (1.5 + EPS)
    got = SoftDiceLoss(smooth=EPS)(pred, label)
    assert got.item() == pytest.approx((1 - dice0) / 2, abs=1e-12)
    # MMSeg's DiceLoss keeps the ignored pixel's prediction: not the same
    mmseg_dice = MODELS.build(dict(type='DiceLoss', use_sigmoid=False,
                                   ignore_index=IGNORE))
    assert mmseg_dice(pred, label).item() != pytest.approx(got.item(),
                                                           abs=1e-3)


def test_dice_is_a_batch_statistic():
    # image 1 = pixel of class 0, image 2 = pixel of class 1: summed over
    # the batch this is test_dice_both_classes_present
    pred = torch.zeros(2, 2, 1, 1, dtype=torch.float64)
    label = torch.tensor([0, 1]).view(2, 1, 1)
    dice = (2 * 0.5 + EPS) / (2 + EPS)
    assert soft_dice_loss(pred, label, EPS).item() == pytest.approx(
        1 - dice, abs=1e-12)


def test_dice_perfect_prediction_is_zero():
    label = torch.tensor([[[0, 1], [2, 1]]])
    pred = F.one_hot(label, 3).permute(0, 3, 1, 2).double() * 1e3
    assert soft_dice_loss(pred, label, EPS).item() == pytest.approx(
        0.0, abs=1e-9)


def test_dice_rejects_pixel_weights():
    pred, label = pixels(UNIFORM_2, [0, 1])
    with pytest.raises(ValueError, match='weights'):
        SoftDiceLoss()(pred, label, weight=torch.ones_like(label))


# ------------------------------------------- as MMSeg's loss_decode list
def test_joint_loss_in_an_mmseg_decode_head():
    """The paper's joint loss in a decode head: two entries in the loss
    dict, each the loss computed directly on the resized logits."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    num_classes, channels, side = 3, 4, 8
    head = MODELS.build(dict(
        type='FCNHead', in_channels=channels, channels=channels,
        num_convs=1, num_classes=num_classes,
        loss_decode=[dict(type='SoftCrossEntropyLoss', smooth_factor=EPS),
                     dict(type='SoftDiceLoss', smooth=EPS)]))
    torch.manual_seed(0)
    logits = torch.randn(2, num_classes, side, side)
    gt = torch.randint(0, num_classes, (2, side, side))
    gt[0, 0, :] = IGNORE
    losses = head.loss_by_feat(logits, make_samples(gt))
    assert losses['loss_ce'].item() == pytest.approx(
        SoftCrossEntropyLoss(smooth_factor=EPS)(logits, gt).item(),
        rel=1e-6)
    assert losses['loss_dice'].item() == pytest.approx(
        soft_dice_loss(logits, gt, EPS).item(), rel=1e-6)


def test_half_precision_logits_are_summed_in_float32():
    """Under AMP the logits may be float16; the dice sums over a batch of
    pixels exceed float16's range (65504), so both losses work in float32."""
    num_pixels = 2 * int(torch.finfo(torch.float16).max)
    label = torch.zeros(1, 1, num_pixels, dtype=torch.long)
    pred = torch.zeros(1, 2, 1, num_pixels, dtype=torch.float16)
    dice = soft_dice_loss(pred, label, EPS)
    # class 0: inter = n / 2, card = n / 2 + n; class 1 absent
    n = num_pixels
    expected = (1 - (2 * n / 2 + EPS) / (n / 2 + n + EPS)) / 2
    assert dice.dtype == torch.float32
    assert dice.item() == pytest.approx(expected, rel=1e-4)
    ce = SoftCrossEntropyLoss(smooth_factor=EPS)(pred, label)
    assert ce.item() == pytest.approx(math.log(2), rel=1e-4)
