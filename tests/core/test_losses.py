"""CL and InfoNCE values against hand computations and a naive reference."""
import math

import pytest
import torch
import torch.nn.functional as F

from ct_mmseg.core import cl_class_losses, cl_pair_loss, infonce_class_losses
from ct_mmseg.models import PatchContrastLoss


def logsig(x):
    return -math.log1p(math.exp(-x))


@pytest.mark.parametrize('cos,same,expected', [
    # soft CE over [1 - s, s] == BCE on sigmoid(cos), target 0.95 / 0.05
    (1.0, True, -(0.95 * logsig(1) + 0.05 * logsig(-1))),   # 0.3633
    (-1.0, True, -(0.95 * logsig(-1) + 0.05 * logsig(1))),  # 1.2633
    (0.0, True, math.log(2)),
    (0.0, False, math.log(2)),
    (-1.0, False, -(0.05 * logsig(-1) + 0.95 * logsig(1))),
])
def test_cl_soft_ce_values(cos, same, expected):
    got = cl_pair_loss(torch.tensor([cos], dtype=torch.float64), same, 0.1)
    assert got.item() == pytest.approx(expected, abs=1e-9)


def test_cl_soft_ce_bounds_from_the_authors_record():
    cos = torch.linspace(-1, 1, 101, dtype=torch.float64)
    for same in (True, False):
        values = cl_pair_loss(cos, same, 0.1)
        assert values.min().item() == pytest.approx(0.3633, abs=1e-4)
        assert values.max().item() == pytest.approx(1.2633, abs=1e-4)


def test_cl_bce_on_similarity_form():
    # s = (0.6 + 1) / 2 = 0.8, target 0.95
    got = cl_pair_loss(torch.tensor([0.6], dtype=torch.float64), True, 0.1,
                       form='bce')
    expected = -(0.95 * math.log(0.8) + 0.05 * math.log(0.2))
    assert got.item() == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match='cl_form'):
        cl_pair_loss(torch.zeros(1), True, 0.1, form='hinge')


def unit(angles_deg):
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], dim=-1)


def test_cl_class_loss_by_hand():
    # 4 positives at 0, 0, 90, 30 degrees; 4 negatives at 180, 90, 0, 45.
    pos = unit([0, 0, 90, 30])[None]
    neg = unit([180, 90, 0, 45])[None]
    out = cl_class_losses(pos, torch.tensor([4]), neg, torch.tensor([4]),
                          hard_fraction=0.5, label_smoothing=0.1,
                          min_positives=2, min_negatives=2,
                          min_positives_for_pairs=4)
    # negative pairs (i, i): cos 180=-1, cos 90=0, cos 90=0, cos 15=.966;
    # keep the 2 most similar: .966 and 0 (target 0)
    neg_terms = cl_pair_loss(torch.tensor([math.cos(math.radians(15)), 0.0],
                                          dtype=torch.float64), False, 0.1)
    # positive pairs (0,2): cos 90 = 0, (1,3): cos 30; keep the least: 0
    pos_terms = cl_pair_loss(torch.tensor([0.0], dtype=torch.float64), True,
                             0.1)
    assert out.active.tolist() == [True]
    assert out.loss.item() == pytest.approx(
        (neg_terms.mean() + pos_terms.mean()).item(), abs=1e-9)
    assert out.pairs.tolist() == [3]


def test_cl_inactive_class_is_zero_and_keeps_graph():
    pos = F.normalize(torch.randn(2, 6, 8), dim=-1).requires_grad_()
    neg = F.normalize(torch.randn(2, 6, 8), dim=-1).requires_grad_()
    out = cl_class_losses(pos, torch.tensor([6, 3]), neg,
                          torch.tensor([6, 6]))
    assert out.active.tolist() == [True, False]
    assert out.loss[1].item() == 0
    out.loss.sum().backward()
    assert pos.grad is not None and torch.isfinite(pos.grad).all()
    assert pos.grad[1].abs().sum() == 0  # inactive class gets no push


def naive_infonce(pos, neg, n, temperature, fraction):
    """Loop reference of the authors' InfoNCE sampling for one class."""
    sims = [(float(pos[i] @ neg[i]), i) for i in range(n)]
    sims.sort(key=lambda t: -t[0])
    kept = [i for _, i in sims[:int(math.floor(n * fraction))]]
    half = len(kept) // 2
    queries = [pos[i] for i in kept[:half]]
    keys = [pos[i] for i in kept[half:2 * half]]
    negs = torch.stack([neg[i] for i in kept])
    losses = []
    for q, k in zip(queries, keys):
        logits = torch.cat([(q @ k)[None], negs @ q]) / temperature
        losses.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(losses).mean()


def test_infonce_matches_loop_reference():
    gen = torch.Generator().manual_seed(0)
    pos = F.normalize(torch.randn(3, 16, 5, generator=gen,
                                  dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(3, 16, 5, generator=gen,
                                  dtype=torch.float64), dim=-1)
    npos, nneg = torch.tensor([16, 12, 9]), torch.tensor([14, 16, 16])
    out = infonce_class_losses(pos, npos, neg, nneg, temperature=0.1,
                               hard_fraction=0.5, min_positives=10,
                               min_negatives=10)
    assert out.active.tolist() == [True, True, False]
    for k in range(2):
        n = int(min(npos[k], nneg[k]))
        ref = naive_infonce(pos[k], neg[k], n, 0.1, 0.5)
        assert out.loss[k].item() == pytest.approx(ref.item(), abs=1e-9)
    assert out.loss[2].item() == 0


def test_infonce_by_hand_two_dimensions():
    # 4 pairs, keep all (fraction 1): queries = 2 hardest positives.
    pos = unit([0, 10, 20, 30])[None]
    # pair gaps 95, 90, 85, 120 degrees -> most similar first: 2, 1, 0, 3
    neg = unit([95, 100, 105, 150])[None]
    out = infonce_class_losses(pos, torch.tensor([4]), neg, torch.tensor([4]),
                               temperature=1.0, hard_fraction=1.0,
                               min_positives=2, min_negatives=2)
    # queries: kept positives 2, 1 (20, 10 deg); keys: kept 0, 3 (0, 30 deg)
    expected = 0.0
    for q, k in ((20, 0), (10, 30)):
        logits = [math.cos(math.radians(k - q))] + [
            math.cos(math.radians(n - q)) for n in (95, 100, 105, 150)]
        expected += -logits[0] + math.log(sum(math.exp(v) for v in logits))
    assert out.loss.item() == pytest.approx(expected / 2, abs=1e-9)


@pytest.mark.parametrize('mode', ['scale', 'clamp'])
def test_clip_keeps_share_and_total(mode):
    loss = PatchContrastLoss(clip_value=1.0, clip_mode=mode, loss_weight=2.0)
    a = torch.tensor(1.5, requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    out = loss.clip([a, b])
    assert sum(out).item() == pytest.approx(2.0)  # clipped to 1, weight 2
    assert out[0].item() == pytest.approx(1.5)  # share 3/4 of 2
    sum(out).backward()
    if mode == 'scale':
        assert a.grad.item() == pytest.approx(2.0 * 1.0 / 2.0)
    else:
        assert a.grad.item() == 0 and b.grad.item() == 0


def test_clip_below_threshold_is_identity():
    loss = PatchContrastLoss(clip_value=1.0)
    a = torch.tensor(0.3, requires_grad=True)
    (out,) = loss.clip([a])
    out.backward()
    assert out.item() == pytest.approx(0.3) and a.grad.item() == 1.0


@pytest.mark.parametrize('kwargs,match', [
    (dict(mode='triplet'), 'mode'),
    (dict(temperature=0), 'temperature'),
    (dict(clip_mode='cut'), 'clip_mode'),
    (dict(hard_fraction=0), 'hard_fraction'),
    (dict(label_smoothing=1.0), 'label_smoothing'),
    (dict(loss_name='ct'), 'loss_name'),
    (dict(min_positives=1, mode='infonce'), 'min_positives'),
    (dict(clip_value=-1), 'clip_value'),
])
def test_bad_loss_options_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PatchContrastLoss(**kwargs)
