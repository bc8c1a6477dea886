"""The fused fast paths against their plain definitions.

* :func:`ct_mmseg.core.project_tokens` (gather + MLP head + L2 norm in one
  autograd node) against ``F.normalize(head(tokens))`` through autograd;
* :func:`ct_mmseg.core.stage_labels` / ``stage_patch_masks`` (every stage
  from one pass over the GT) against the per-stage :func:`patch_masks` and
  :func:`positive_counts`;
* the one-node InfoNCE query loss against ``logaddexp`` / ``logsumexp``.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ct_mmseg.core import (classes_present, compact_labels, gather_tokens,
                           infonce_class_losses, mlp_linears, patch_masks,
                           positive_counts, project_tokens, projected_tokens,
                           scatter_tokens, stage_classes_present,
                           stage_labels, stage_patch_masks,
                           stage_positive_counts)
from ct_mmseg.core.losses import _InfoNCEQueryLoss
from ct_mmseg.models.ct_head import build_projector
from test_patch_labels import IGN, MASK, MASK_NEGATIVE, MASK_POSITIVE


# --------------------------------------------------------------------------- #
# project_tokens
# --------------------------------------------------------------------------- #
def module_path(feat, index, projector):
    tokens = feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])[index]
    return F.normalize(projector(tokens), dim=-1)


def test_projection_by_hand():
    """One Linear layer set to the identity, zero bias: the projection of a
    token is the token over its length; (3, 4) -> (0.6, 0.8)."""
    projector = build_projector(2, 2, 1)
    with torch.no_grad():
        projector[0].weight.copy_(torch.eye(2))
        projector[0].bias.zero_()
    feat = torch.tensor([[[[3.0, 0.0]], [[4.0, 2.0]]]])  # (1, 2, 1, 2)
    out = project_tokens(feat, torch.tensor([0, 1, 0]), mlp_linears(projector))
    assert out.tolist() == [[0.6000000238418579, 0.800000011920929],
                            [0.0, 1.0],
                            [0.6000000238418579, 0.800000011920929]]


@pytest.mark.parametrize('num_layers', [1, 2, 3])
@pytest.mark.parametrize('num_drawn', [0, 7, 40, 75],
                         ids=['none', 'drawn', 'drawn-repeats', 'all-tokens'])
@pytest.mark.parametrize('recompute', [True, False])
@pytest.mark.parametrize('distinct', [True, False],
                         ids=['distinct-tokens', 'sorted-draws'])
def test_projection_equals_the_module_path(num_layers, num_drawn, recompute,
                                           distinct):
    """Same values and gradients (map and every parameter) as autograd
    through the modules, in float64 to the last bits; with repeated tokens,
    no token, and more draws than tokens (the every-token path); the head
    run once per distinct token (the CPU's default) or once per draw (a
    GPU's)."""
    gen = torch.Generator().manual_seed(num_layers * 100 + num_drawn)
    projector = build_projector(5, 6, num_layers).double()
    feat = torch.randn(2, 5, 4, 6, generator=gen,
                       dtype=torch.float64).requires_grad_()
    index = torch.randint(0, 48, (num_drawn,), generator=gen)
    want = module_path(feat, index, projector)
    got = project_tokens(feat, index, mlp_linears(projector), recompute,
                         distinct)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    grad = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    inputs = [feat, *projector.parameters()]
    for a, b in zip(torch.autograd.grad(got, inputs, grad),
                    torch.autograd.grad(want, inputs, grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('distinct', [True, False])
def test_projection_gradcheck(distinct):
    projector = build_projector(3, 4, 2).double()
    feat = torch.randn(1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    linears = mlp_linears(projector)
    for index in (torch.tensor([4, 0, 4, 8]), torch.arange(9).repeat(2)):
        assert torch.autograd.gradcheck(
            lambda f, *p: project_tokens(f, index, linears,
                                         distinct=distinct),
            (feat, *projector.parameters()))


def test_projected_tokens_by_hand():
    """Draws 7, 2, 7, 5 of a 2 x 3 x 3 map (18 tokens): distinct tokens
    2, 5, 7 with the draws at rows 2, 0, 2, 1; or the sorted draws
    2, 5, 7, 7 with the draws at rows 2, 0, 3, 1; with 18 draws or more,
    every token and the draws as rows."""
    feat = torch.zeros(2, 1, 3, 3)
    index = torch.tensor([7, 2, 7, 5])
    tokens, rows = projected_tokens(feat, index, distinct=True)
    assert tokens.tolist() == [2, 5, 7] and rows.tolist() == [2, 0, 2, 1]
    tokens, rows = projected_tokens(feat, index, distinct=False)
    assert tokens.tolist() == [2, 5, 7, 7] and rows.tolist() == [2, 0, 3, 1]
    assert projected_tokens(feat, index)[0].tolist() == [2, 5, 7]  # CPU
    many = torch.arange(18).flip(0)
    tokens, rows = projected_tokens(feat, many, distinct=True)
    assert tokens is None and rows is many


def test_projection_of_a_half_precision_map_is_fp32_with_a_matching_grad():
    projector = build_projector(4, 8, 2)
    feat = torch.randn(2, 4, 3, 3).bfloat16().requires_grad_()
    index = torch.tensor([0, 5, 5, 17])
    out = project_tokens(feat, index, mlp_linears(projector))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, module_path(feat.float(), index,
                                                projector))
    out.sum().backward()
    assert feat.grad.dtype == torch.bfloat16
    assert feat.grad.flatten(2)[:, :, [1, 2]].abs().sum() == 0  # not drawn


def test_gather_and_scatter_are_adjoint():
    """<gather(f), g> = <f, scatter(g)>, repeats included."""
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    index = torch.tensor([0, 39, 7, 7, 20, 39, 39])
    rows = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    lhs = (gather_tokens(feat, index) * rows).sum()
    rhs = (feat * scatter_tokens(rows, index, feat.shape)).sum()
    torch.testing.assert_close(lhs, rhs)
    # token 39 = image 1, row 3, col 4
    assert torch.equal(gather_tokens(feat, index)[1], feat[1, :, 3, 4])


def test_other_heads_use_the_module_path():
    assert mlp_linears(build_projector(4, 8, 2)) is not None
    assert mlp_linears(nn.Sequential(nn.Linear(4, 8), nn.GELU('tanh'),
                                     nn.Linear(8, 8))) is None
    assert mlp_linears(nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                                     nn.Linear(8, 8))) is None
    assert mlp_linears(nn.Linear(4, 8)) is None


def test_a_custom_projection_head_still_trains():
    from ct_mmseg.models import ContrastiveTransformerHead
    head = ContrastiveTransformerHead(in_channels=[4], num_classes=2,
                                      strides=[2], num_samples=50, seed=0)
    head.projectors[0] = nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                                       nn.Linear(8, 8))
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gt = torch.zeros(1, 8, 8, dtype=torch.long)
    gt[:, :, 4:] = 1
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=gt)
    feat = torch.randn(1, 4, 4, 4, requires_grad=True)
    loss = sum(head.loss([feat], [sample], None).values())
    loss.backward()
    assert loss.item() > 0
    assert head.projectors[0][2].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- #
# stage_labels / stage_patch_masks
# --------------------------------------------------------------------------- #
def test_stage_tables_by_hand():
    """test_patch_labels' 4 x 4 mask, strides 2 and 4. Stride 2 blocks (TL,
    TR, BL, BR): all 0 / 1,1,1,ign / all 2 / 0,0,0,1; the stride-4 block
    holds 0, 1, 2 and ignore."""
    tables = stage_labels(MASK[None], (2, 4), ((2, 2), (1, 1)), 3)
    assert tables.low[0].tolist() == [0, 1, 2, 0]
    assert tables.high[0].tolist() == [0, 3, 2, 1]  # ignore -> K = 3
    assert tables.low[1].tolist() == [0] and tables.high[1].tolist() == [3]
    assert stage_positive_counts(tables).tolist() == [[1, 0, 1], [0, 0, 0]]
    fine, coarse = stage_patch_masks(tables, torch.tensor([0, 1, 2]))
    assert fine.positive.tolist() == MASK_POSITIVE
    assert fine.negative.tolist() == MASK_NEGATIVE
    assert not coarse.positive.any() and not coarse.negative.any()
    # a class left out of class_ids counts as ignore: TR (1, 1, 1, ignore)
    # is then all ignore, a negative of nothing
    fine, _ = stage_patch_masks(tables, torch.tensor([0, 2]))
    assert fine.negative.tolist() == [[False, False, True, False],
                                      [True, False, False, True]]


STRIDE_SETS = [(4, 8, 16, 32), (2, 4), (3, 6, 5), (16, 16, 16), (4, 12)]


@pytest.mark.parametrize('trial', range(40))
def test_stage_tables_equal_the_per_stage_functions(trial):
    """Random blocky masks with ignore pixels, grids that pad, crop or fit,
    strides that nest and one that does not (5 among 3 and 6)."""
    gen = torch.Generator().manual_seed(trial)
    batch = 1 + trial % 2
    height, width = (int(v) for v in torch.randint(5, 40, (2,),
                                                   generator=gen))
    num_classes = 1 + trial % 7
    coarse = torch.randint(0, num_classes, (batch, 14, 14), generator=gen)
    gt = coarse.repeat_interleave(3, 1).repeat_interleave(3, 2)
    gt = gt[:, :height, :width].clone()
    gt[torch.rand(gt.shape, generator=gen) < 0.05] = IGN
    if trial % 9 == 0:
        gt[:] = IGN
    strides = STRIDE_SETS[trial % len(STRIDE_SETS)]
    grids = []
    for i, s in enumerate(strides):
        pad = (trial + i) % 3
        grids.append((-(-height // s) + (pad == 2) if pad != 1 else
                      max(height // s, 1),
                      -(-width // s) if pad != 1 else max(width // s, 1)))
    tables = stage_labels(gt, strides, grids, num_classes)
    counts = stage_positive_counts(tables)
    present = classes_present(gt, num_classes, IGN)
    assert torch.equal(stage_classes_present(tables), present)
    ids = present.nonzero().flatten()
    compact = compact_labels(gt, ids, num_classes)
    for literal in (False, True):
        got = stage_patch_masks(tables, ids, literal)
        for i, (s, grid) in enumerate(zip(strides, grids)):
            want = patch_masks(compact, s, grid, len(ids), len(ids), literal)
            assert torch.equal(got[i].positive, want.positive), (s, grid)
            assert torch.equal(got[i].negative, want.negative), (s, grid)
            assert torch.equal(counts[i], positive_counts(
                gt, s, grid, num_classes, IGN))


# --------------------------------------------------------------------------- #
# the one-node InfoNCE query loss
# --------------------------------------------------------------------------- #
def autograd_query_loss(queries, keys, negatives, valid):
    positive = (queries * keys).sum(-1)
    logits = torch.einsum('kqd,knd->kqn', queries, negatives)
    logits = logits.masked_fill(~valid.unsqueeze(1), float('-inf'))
    return torch.logaddexp(positive, logits.logsumexp(-1)) - positive


def test_query_loss_by_hand():
    """One query, key at cosine 1, one negative at cosine 0, temperature 1:
    -log(e / (e + 1)) = log(1 + 1/e) = 0.31326."""
    q = torch.tensor([[[1.0, 0.0]]])
    k = torch.tensor([[[1.0, 0.0]]])
    n = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    valid = torch.tensor([[True, False]])  # the second negative is padding
    loss = _InfoNCEQueryLoss.apply(q, k, n, valid)
    assert loss.item() == pytest.approx(0.313261687518223, abs=1e-7)


def test_query_loss_equals_autograd_and_passes_gradcheck():
    gen = torch.Generator().manual_seed(0)
    shape = dict(dtype=torch.float64)
    q = torch.randn(3, 4, 5, generator=gen, **shape).requires_grad_()
    k = torch.randn(3, 4, 5, generator=gen, **shape).requires_grad_()
    n = torch.randn(3, 6, 5, generator=gen, **shape).requires_grad_()
    valid = torch.rand(3, 6, generator=gen) < 0.6
    valid[1] = False  # a class without a real negative
    got = _InfoNCEQueryLoss.apply(q, k, n, valid)
    want = autograd_query_loss(q, k, n, valid)
    torch.testing.assert_close(got, want)
    assert torch.isfinite(got).all() and (got[1].abs() < 1e-12).all()
    weights = torch.randn(got.shape, generator=gen, **shape)
    for a, b in zip(torch.autograd.grad(got, (q, k, n), weights),
                    torch.autograd.grad(want, (q, k, n), weights)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(
        lambda *t: _InfoNCEQueryLoss.apply(*t, valid), (q, k, n))


def test_padding_negatives_get_no_gradient():
    gen = torch.Generator().manual_seed(1)
    q, k = (F.normalize(torch.randn(2, 3, 4, generator=gen), dim=-1)
            for _ in range(2))
    n = F.normalize(torch.randn(2, 5, 4, generator=gen), dim=-1)
    n.requires_grad_()
    valid = torch.tensor([[True] * 3 + [False] * 2, [False] * 5])
    _InfoNCEQueryLoss.apply(q, k, n, valid).sum().backward()
    assert n.grad[0, 3:].abs().sum() == 0 and n.grad[1].abs().sum() == 0
    assert n.grad[0, :3].abs().sum() > 0


def test_infonce_with_no_query_or_no_negative_is_zero_not_nan():
    emb = F.normalize(torch.randn(2, 1, 8), dim=-1).requires_grad_()
    out = infonce_class_losses(emb, torch.tensor([1, 0]), emb,
                               torch.tensor([1, 0]), min_positives=2,
                               min_negatives=1)
    assert out.loss.tolist() == [0.0, 0.0]
    out.loss.sum().backward()
    assert torch.isfinite(emb.grad).all()
