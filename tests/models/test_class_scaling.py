"""CT's cost follows the classes present, not the dataset's K.

The head relabels the batch GT onto the classes present and sizes every
tensor by them (and InfoNCE's logits by what can be valid). These tests show
that these shapes change nothing: against the reference implementation
(``tests/reference_v1``, every tensor sized by the dataset's K), the losses
and the gradients are the same whenever the draws are the same, for K = 6
and K = 150, both losses.

Same draws: both implementations draw by giving every (class, token) a random
key and taking the largest keys of the eligible tokens. Here ``torch.rand``
is replaced by keys that depend on the token only (one fixed random value per
token, the same for every class), so both pick the same tokens in the same
order for each class even though one draws (K, N) keys and the other
(K_present, N).
"""
import contextlib
from unittest import mock

import pytest
import torch
from mmseg.registry import MODELS

import ct_mmseg.models.ct_head as ct_head_module
from ct_mmseg.models.step_stats import StepStats
from conftest import make_samples
from reference_v1 import losses as ref_losses
from reference_v1 import mining as ref_mining
from reference_v1 import patch_labels as ref_labels

IGN = 255
CHANNELS = [8, 16, 32, 64]
STRIDES = [4, 8, 16, 32]
SIZE = 64


def build_head(num_classes, mode, num_samples, **loss):
    return MODELS.build(dict(
        type='ContrastiveTransformerHead', in_channels=CHANNELS,
        strides=STRIDES, num_classes=num_classes, proj_channels=16,
        num_samples=num_samples, seed=None,
        loss_decode=dict(type='PatchContrastLoss', mode=mode, **loss)))


def features(batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, SIZE // s, SIZE // s,
                        generator=gen).requires_grad_(True)
            for c, s in zip(CHANNELS, STRIDES)]


def gt_with_classes(class_ids, batch=2, block=16, seed=1, ignore=True):
    """Blocks of the given classes (and some ignore) over a SIZE x SIZE GT."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor(list(class_ids) + ([IGN] if ignore else []))
    cells = torch.randint(0, len(labels), (batch, SIZE // block,
                                           SIZE // block), generator=gen)
    gt = labels[cells].repeat_interleave(block, 1).repeat_interleave(block, 2)
    # specks of another present class inside blocks: mixed patches
    speck = torch.rand(gt.shape, generator=gen) < 0.01
    return gt.masked_fill(speck, int(class_ids[0]))


@contextlib.contextmanager
def token_keyed_draws():
    """``torch.rand((rows, N))`` -> one fixed key per token, every row."""
    real_rand = torch.rand

    def rand(*shape, generator=None, device=None, **kwargs):
        shape = shape[0] if len(shape) == 1 else shape
        rows, tokens = shape
        per_token = real_rand(tokens, generator=torch.Generator().manual_seed(
            tokens))
        return per_token.to(device).expand(rows, tokens).contiguous()

    with mock.patch.object(torch, 'rand', rand):
        yield


def reference_loss(head, feats, gt):
    """The head's loss computed by the reference implementation
    (``tests/reference_v1``)."""
    loss = head.loss_decode
    present = ref_labels.classes_present(gt, head.num_classes, IGN)
    divisor = len(feats) * present.sum().clamp(min=1).float()
    stage_losses = []
    for feat, stride, projector in zip(feats, head.strides, head.projectors):
        masks = ref_labels.patch_masks(gt, stride, feat.shape[-2:],
                                       head.num_classes, IGN,
                                       head.ignore_only_negatives)
        pos = ref_mining.sample_candidates(masks.positive, head.num_samples)
        neg = ref_mining.sample_candidates(masks.negative, head.num_samples)
        index = torch.cat([pos.index, neg.index], dim=1)
        emb = head._embed(feat, projector, index.flatten())
        emb = emb.view(*index.shape, -1)
        pos_emb, neg_emb = emb.split(pos.index.shape[1], dim=1)
        if loss.mode == 'cl':
            per_class = ref_losses.cl_class_losses(
                pos_emb, pos.count, neg_emb, neg.count,
                hard_fraction=loss.hard_fraction,
                label_smoothing=loss.label_smoothing,
                min_positives=loss.min_positives,
                min_negatives=loss.min_negatives,
                min_positives_for_pairs=loss.min_positives_for_pairs,
                form=loss.cl_form)
        else:
            per_class = ref_losses.infonce_class_losses(
                pos_emb, pos.count, neg_emb, neg.count,
                temperature=loss.temperature,
                hard_fraction=loss.hard_fraction,
                min_positives=loss.min_positives,
                min_negatives=loss.min_negatives)
        stage_losses.append(per_class.loss.sum() / divisor)
    return loss.clip(stage_losses)


def losses_and_grads(fn, head, feats):
    for f in feats:
        f.grad = None
    head.zero_grad()
    losses = fn()
    sum(losses).backward()
    return (torch.stack([loss.detach() for loss in losses]),
            [f.grad.clone() for f in feats],
            [p.grad.clone() for p in head.parameters()])


@pytest.mark.parametrize('mode', ['cl', 'infonce'])
@pytest.mark.parametrize('num_classes,class_ids', [
    (6, (0, 1, 2, 3, 4, 5)),
    (6, (1, 4)),                          # some dataset classes absent
    (150, (3, 17, 42, 99, 120, 149)),     # ADE20K-sized K, a handful present
])
@pytest.mark.parametrize('num_samples', [100000, 40])  # all drawn / bounded
def test_same_loss_and_gradients_as_before(mode, num_classes, class_ids,
                                           num_samples):
    head = build_head(num_classes, mode, num_samples, clip_value=None)
    feats = features()
    gt = gt_with_classes(class_ids)
    with token_keyed_draws():
        new = losses_and_grads(
            lambda: list(head.loss(feats, make_samples(gt), None).values()),
            head, feats)
        old = losses_and_grads(lambda: reference_loss(head, feats, gt),
                               head, feats)
    assert new[0].sum() > 0
    torch.testing.assert_close(new[0], old[0], rtol=1e-5, atol=1e-7)
    for got, want in zip(new[1] + new[2], old[1] + old[2]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('mode', ['cl', 'infonce'])
def test_dataset_class_count_does_not_change_the_result(mode):
    """Same seeded draws, no patching: K = 150 with six scattered class ids
    gives bit for bit the K = 6 result on the same GT relabelled 0..5."""
    ids = (3, 17, 42, 99, 120, 149)
    gt_150 = gt_with_classes(ids)
    lookup = torch.full((256,), IGN, dtype=torch.long)
    lookup[torch.tensor(ids)] = torch.arange(6)
    gt_6 = lookup[gt_150]
    weights = build_head(6, mode, 50).state_dict()
    results = []
    for num_classes, gt in ((150, gt_150), (6, gt_6)):
        head = build_head(num_classes, mode, 50)
        head.seed = 0
        head.load_state_dict(weights)
        feats = features()
        results.append(losses_and_grads(
            lambda: list(head.loss(feats, make_samples(gt), None).values()),
            head, feats))
    (loss_150, feat_150, param_150), (loss_6, feat_6, param_6) = results
    assert loss_150.sum() > 0
    assert torch.equal(loss_150, loss_6)
    assert all(torch.equal(a, b) for a, b in zip(feat_150 + param_150,
                                                  feat_6 + param_6))


def test_step_stats_are_reported_on_the_dataset_classes():
    head = build_head(150, 'cl', 50)
    head.loss(features(), make_samples(gt_with_classes((7, 80))), None)
    stats, present = head.step_stats, head.step_present
    assert len(stats) == len(StepStats._fields) == 8
    assert all(t.shape == (4, 150) for t in stats)
    assert present.shape == (150,)
    assert present.nonzero().flatten().tolist() == [7, 80]
    absent = torch.ones(150, dtype=torch.bool)
    absent[[7, 80]] = False
    assert all((t[:, absent] == 0).all() for t in stats)
    assert (stats.positives[0, [7, 80]] > 0).all()  # found at stage 0


def test_only_present_classes_are_drawn():
    """The draws are (classes present, N): what the cost follows."""
    head = build_head(150, 'infonce', 50)
    shapes = []
    real = ct_head_module.sample_candidates

    def spy(eligible, *args, **kwargs):
        shapes.append(tuple(eligible.shape))
        return real(eligible, *args, **kwargs)

    with mock.patch.object(ct_head_module, 'sample_candidates', spy):
        head.loss(features(), make_samples(gt_with_classes((7, 80, 149))),
                  None)
    assert [rows for rows, _ in shapes] == [3] * 8  # 4 stages x pos, neg


def test_no_class_present_gives_zero_loss_with_graph():
    head = build_head(150, 'infonce', 50)
    feats = features()
    gt = torch.full((2, SIZE, SIZE), IGN, dtype=torch.long)
    losses = head.loss(feats, make_samples(gt), None)
    total = sum(losses.values())
    assert total.item() == 0 and total.requires_grad
    total.backward()
    assert all(torch.isfinite(f.grad).all() for f in feats)


# --------------------------------------------------------------------------- #
# mechanism statistics the study reads
# --------------------------------------------------------------------------- #
def test_gradient_norms_split_ct_from_the_rest():
    """``grad_stats``: CT's and the other losses' gradient norms at every
    stage output equal those from separate autograd passes."""
    head = build_head(6, 'cl', 50, clip_value=None)
    head.grad_stats = True
    feats = features()
    gt = gt_with_classes((0, 1, 2, 3))
    weights = [torch.randn_like(f) for f in feats]

    def losses():
        torch.manual_seed(0)  # the same draws in both passes
        ct = sum(head.loss(feats, make_samples(gt), None).values())
        seg = sum((f * w).square().sum() for f, w in zip(feats, weights))
        return ct, seg

    ct, seg = losses()
    want_ct = torch.autograd.grad(ct, feats, retain_graph=True)
    want_seg = torch.autograd.grad(seg, feats)
    ct, seg = losses()
    (ct + seg).backward()
    got = head.step_grad_norms
    assert got.shape == (4, 2)
    torch.testing.assert_close(
        got[:, 0], torch.stack([g.square().sum() for g in want_ct]))
    torch.testing.assert_close(
        got[:, 1], torch.stack([g.square().sum() for g in want_seg]))
    assert (got[:2, 0] > 0).all()  # coarse stages may have no active class


@pytest.mark.parametrize('total,over', [(0.4, False), (2.5, True)])
def test_clip_records_whether_the_total_was_over(total, over):
    head = build_head(6, 'cl', 50, clip_mode='clamp')
    stage = torch.tensor(total / 2, requires_grad=True)
    clipped = head.loss_decode.clip([stage, stage])
    assert bool(head.loss_decode.last_over_clip) is over
    sum(clipped).backward()
    # clamp above the clip: no gradient at all
    assert stage.grad.item() == (0.0 if over else 2.0)


def test_weight_warm_up_follows_the_training_iteration():
    from mmengine.logging import MessageHub
    head = build_head(6, 'cl', 50, clip_value=None, loss_weight=2.0,
                      warmup_iters=4)
    hub = MessageHub.get_current_instance()
    stage = torch.tensor(0.3)
    try:
        # iteration i (0-based) weighs loss_weight * (i + 1) / warmup_iters
        for step, weight in ((0, 0.5), (1, 1.0), (3, 2.0), (10, 2.0)):
            hub.update_info('iter', step)
            got = head.loss_decode.clip([stage])[0]
            assert got.item() == pytest.approx(0.3 * weight)
    finally:
        hub.update_info('iter', None)
    # outside a training loop: the full weight
    assert head.loss_decode.clip([stage])[0].item() == pytest.approx(0.6)


@pytest.mark.parametrize('mode', ['cl', 'infonce'])
def test_checkpointed_projection_changes_no_value(mode):
    """``checkpoint_projection`` recomputes the heads in backward: the same
    losses and gradients as keeping their activations."""
    results = []
    weights = build_head(6, mode, 60).state_dict()
    for flag in (True, False):
        head = build_head(6, mode, 60)
        head.load_state_dict(weights)
        head.checkpoint_projection = flag
        head.seed = 0
        feats = features()
        gt = gt_with_classes((0, 1, 2, 3))
        results.append(losses_and_grads(
            lambda: list(head.loss(feats, make_samples(gt), None).values()),
            head, feats))
    (loss_a, feat_a, par_a), (loss_b, feat_b, par_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    for a, b in zip(feat_a + par_a, feat_b + par_b):
        torch.testing.assert_close(a, b)
