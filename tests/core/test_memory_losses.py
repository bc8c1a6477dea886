"""CL and InfoNCE with memory partners against loop references."""
import math

import pytest
import torch
import torch.nn.functional as F

from ct_mmseg.core.losses import (MemoryPartners, cl_class_losses,
                                  infonce_class_losses)


def random_unit(gen, *shape):
    return F.normalize(torch.randn(*shape, generator=gen,
                                   dtype=torch.float64), dim=-1)


def make_case(seed, num_classes=4, width=12, size=5, neg_width=7, dim=4):
    """Batch and memory of ``num_classes`` classes with varied counts."""
    gen = torch.Generator().manual_seed(seed)
    pos = random_unit(gen, num_classes, width, dim)
    neg = random_unit(gen, num_classes, width, dim)
    mem_pos = random_unit(gen, num_classes, size, dim)
    mem_neg = random_unit(gen, num_classes, neg_width, dim)
    npos = torch.tensor([12, 11, 7, 3])[:num_classes]
    nneg = torch.tensor([9, 0, 12, 4])[:num_classes]
    n_mem_pos = torch.tensor([5, 2, 0, 4])[:num_classes]
    n_mem_neg = torch.tensor([7, 6, 3, 0])[:num_classes]
    return (pos, npos, neg, nneg,
            MemoryPartners(mem_pos, n_mem_pos, mem_neg, n_mem_neg))


def dot(a, b):
    return float(a @ b)


def kept_count(n, fraction):
    kept = math.floor(n * fraction)
    return max(kept, 1) if n > 0 else 0


def cl_term(cos, same, eps, form):
    """cl_pair_loss of one pair, written out."""
    t = 1 - eps / 2 if same else eps / 2
    if form == 'soft_ce':
        logsig = lambda x: -math.log1p(math.exp(-x))  # noqa: E731
        return -(t * logsig(cos) + (1 - t) * logsig(-cos))
    s = min(max((cos + 1) / 2, 1e-6), 1 - 1e-6)
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


def keep(cosines, fraction, selection, most_similar):
    kept = kept_count(len(cosines), fraction)
    if selection == 'hardest':
        cosines = sorted(cosines, reverse=most_similar)
    return cosines[:kept]


def mean(values):
    return sum(values) / len(values) if values else 0.0


def counted_classes(npos, nneg, memory, min_pos, min_neg):
    """The classes the losses count, for the loop references: yields k and
    the valid slots p, n, mp, mn (ints) of its batch positives, negatives
    and memory positives, negatives, for every k with p >= min_pos and
    n + mn >= min_neg."""
    for k in range(len(npos)):
        p, n = int(npos[k]), int(nneg[k])
        mp, mn = int(memory.num_positives[k]), int(memory.num_negatives[k])
        if p >= min_pos and n + mn >= min_neg:
            yield k, p, n, mp, mn


def naive_cl(pos, npos, neg, nneg, memory, fraction, eps, min_pos, min_neg,
             min_pairs, form, selection):
    """Loop reference: per class loss, pairs and positive pairs."""
    mem_pos, mem_neg = memory.positives, memory.negatives
    out = [(0.0, 0, 0)] * pos.shape[0]  # classes that do not count
    for k, p, n, mp, mn in counted_classes(npos, nneg, memory, min_pos,
                                           min_neg):
        negative = [dot(pos[k, i], neg[k, i]) for i in range(min(p, n))]
        negative += [dot(pos[k, i], mem_neg[k, i]) for i in range(min(p, mn))]
        positive = []
        if p >= min_pairs:
            half = p // 2
            positive = [dot(pos[k, i], pos[k, i + half]) for i in range(half)]
        positive += [dot(pos[k, i], mem_pos[k, i]) for i in range(min(p, mp))]
        negative = keep(negative, fraction, selection, True)
        positive = keep(positive, fraction, selection, False)
        loss = (mean([cl_term(c, False, eps, form) for c in negative]) +
                mean([cl_term(c, True, eps, form) for c in positive]))
        out[k] = (loss, len(negative) + len(positive), len(positive))
    return out


@pytest.mark.parametrize('selection', ['hardest', 'random'])
@pytest.mark.parametrize('form', ['soft_ce', 'bce'])
@pytest.mark.parametrize('seed', [0, 1])
def test_cl_with_memory_matches_loop_reference(selection, form, seed):
    pos, npos, neg, nneg, memory = make_case(seed)
    options = dict(hard_fraction=0.5, label_smoothing=0.1, min_positives=3,
                   min_negatives=4, min_positives_for_pairs=8)
    out = cl_class_losses(pos, npos, neg, nneg, form=form,
                          pair_selection=selection, memory=memory, **options)
    ref = naive_cl(pos, npos, neg, nneg, memory, 0.5, 0.1, 3, 4, 8, form,
                   selection)
    # class 3: n_neg + n_memneg = 4 + 0 >= 4, n_pos = 3 >= 3
    assert out.active.tolist() == [True, True, True, True]
    assert out.loss.tolist() == pytest.approx([r[0] for r in ref], abs=1e-9)
    assert out.pairs.tolist() == [r[1] for r in ref]
    assert out.positive_pairs.tolist() == [r[2] for r in ref]


def test_cl_fraction_one_keeps_every_pair_of_the_union():
    """Every batch and memory pair counts when nothing is mined away."""
    pos, npos, neg, nneg, memory = make_case(0)
    options = dict(hard_fraction=1.0, min_positives=3, min_negatives=4,
                   min_positives_for_pairs=8, pair_selection='random')
    out = cl_class_losses(pos, npos, neg, nneg, memory=memory, **options)
    ref = naive_cl(pos, npos, neg, nneg, memory, 1.0, 0.1, 3, 4, 8,
                   'soft_ce', 'random')
    # fraction 1: every pair; class 0: 9 + 7 negative, 6 + 5 positive pairs
    assert out.pairs.tolist() == [r[1] for r in ref]
    assert out.pairs[0].item() == 9 + 7 + 6 + 5
    assert out.loss.tolist() == pytest.approx([r[0] for r in ref], abs=1e-9)


def naive_infonce(pos, npos, neg, nneg, memory, temperature, fraction,
                  min_pos, min_neg):
    """Loop reference: an explicit softmax per term."""
    mem_pos, mem_neg = memory.positives, memory.negatives
    out = [(0.0, 0)] * pos.shape[0]  # classes that do not count
    for k, p, n, mp, mn in counted_classes(npos, nneg, memory, min_pos,
                                           min_neg):
        pairs = sorted(range(min(p, n)),
                       key=lambda i: -dot(pos[k, i], neg[k, i]))
        kept = pairs[:math.floor(min(p, n) * fraction)]
        half = len(kept) // 2
        queries = [pos[k, i] for i in kept[:half]]
        terms = list(zip(queries, [pos[k, i] for i in kept[half:2 * half]]))
        terms += list(zip(queries[:mp], [mem_pos[k, i] for i in range(mp)]))
        negatives = [neg[k, i] for i in kept] + [mem_neg[k, i]
                                                 for i in range(mn)]
        losses = []
        for q, key in terms:
            logits = [dot(q, key) / temperature] + [
                dot(q, v) / temperature for v in negatives]
            losses.append(-math.log(math.exp(logits[0]) /
                                    sum(math.exp(v) for v in logits)))
        out[k] = (mean(losses), len(terms))
    return out


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_infonce_with_memory_matches_loop_reference(seed):
    pos, npos, neg, nneg, memory = make_case(seed)
    out = infonce_class_losses(pos, npos, neg, nneg, temperature=0.2,
                               hard_fraction=0.75, min_positives=3,
                               min_negatives=4, memory=memory)
    ref = naive_infonce(pos, npos, neg, nneg, memory, 0.2, 0.75, 3, 4)
    assert out.active.tolist() == [True, True, True, True]
    assert out.loss.tolist() == pytest.approx([r[0] for r in ref], abs=1e-9)
    assert out.positive_pairs.tolist() == [r[1] for r in ref]
    # class 0: min(12, 9) = 9 pairs, floor(6.75) = 6 kept, 3 queries; 3 + 3
    # terms, each with 1 key and 6 + 7 negatives
    assert out.positive_pairs[0].item() == 6
    assert out.pairs[0].item() == 6 * (1 + 6 + 7)


def test_memory_with_no_valid_entry_equals_no_memory():
    pos, npos, neg, nneg, memory = make_case(4)
    empty = MemoryPartners(memory.positives, torch.zeros(4, dtype=torch.long),
                           memory.negatives, torch.zeros(4, dtype=torch.long))
    options = dict(min_positives=3, min_negatives=4)
    for selection in ('hardest', 'random'):
        a = cl_class_losses(pos, npos, neg, nneg, pair_selection=selection,
                            min_positives_for_pairs=8, **options)
        b = cl_class_losses(pos, npos, neg, nneg, pair_selection=selection,
                            min_positives_for_pairs=8, memory=empty,
                            **options)
        for x, y in zip(a, b):
            assert torch.allclose(x.double(), y.double(), atol=1e-6)
    a = infonce_class_losses(pos, npos, neg, nneg, **options)
    b = infonce_class_losses(pos, npos, neg, nneg, memory=empty, **options)
    for x, y in zip(a, b):
        assert torch.allclose(x.double(), y.double(), atol=1e-6)


@pytest.mark.parametrize('loss', [cl_class_losses, infonce_class_losses])
def test_gradients_reach_the_batch_and_not_the_memory(loss):
    pos, npos, neg, nneg, memory = make_case(5)
    pos.requires_grad_()
    neg.requires_grad_()
    memory = MemoryPartners(memory.positives.clone().requires_grad_(),
                            memory.num_positives,
                            memory.negatives.clone().requires_grad_(),
                            memory.num_negatives)
    out = loss(pos, npos, neg, nneg, min_positives=3, min_negatives=4,
               memory=memory)
    out.loss.sum().backward()
    assert pos.grad.abs().sum() > 0 and neg.grad.abs().sum() > 0
    assert torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    assert memory.positives.grad is None and memory.negatives.grad is None


def test_memory_negatives_activate_a_class_without_batch_negatives():
    pos, npos, neg, nneg, memory = make_case(6)
    # class 1 has 11 positives and no batch negative; 6 memory negatives
    pos.requires_grad_()
    options = dict(min_positives=3, min_negatives=4)
    without = cl_class_losses(pos, npos, neg, nneg, **options)
    assert not without.active[1]
    out = cl_class_losses(pos, npos, neg, nneg, memory=memory, **options)
    assert out.active[1] and out.loss[1] > 0
    # min(11, 6) = 6 memory negative pairs, 3 kept; half split 5 pairs and
    # min(11, 2) = 2 memory positive pairs, 7 // 2 = 3 kept
    assert out.pairs[1].item() == 3 + 3 and out.positive_pairs[1].item() == 3
    out.loss[1].backward()
    assert pos.grad[1].abs().sum() > 0
    # InfoNCE: active, but its queries come from batch pairs: no term
    info = infonce_class_losses(pos, npos, neg, nneg, memory=memory,
                                **options)
    assert info.active[1] and info.loss[1].item() == 0
    assert info.pairs[1].item() == 0


@pytest.mark.parametrize('loss', [cl_class_losses, infonce_class_losses])
def test_all_zero_counts_give_zero_without_nan(loss):
    gen = torch.Generator().manual_seed(7)
    pos = random_unit(gen, 3, 6, 4).requires_grad_()
    neg = random_unit(gen, 3, 6, 4).requires_grad_()
    zeros = torch.zeros(3, dtype=torch.long)
    for memory in (MemoryPartners(random_unit(gen, 3, 4, 4), zeros,
                                  random_unit(gen, 3, 5, 4), zeros),
                   MemoryPartners(torch.zeros(3, 0, 4), zeros,
                                  torch.zeros(3, 0, 4), zeros)):
        out = loss(pos, zeros, neg, zeros, memory=memory)
        assert out.loss.tolist() == [0.0, 0.0, 0.0]
        assert out.pairs.tolist() == [0, 0, 0]
        assert torch.isfinite(out.positive_cosine).all()
        assert torch.isfinite(out.negative_cosine).all()
        out.loss.sum().backward()
        assert torch.isfinite(pos.grad).all()
        assert torch.isfinite(neg.grad).all()


def test_inactive_class_with_memory_is_zero_and_keeps_the_graph():
    pos, npos, neg, nneg, memory = make_case(8)
    pos.requires_grad_()
    # class 3: 3 positives < 5
    out = cl_class_losses(pos, npos, neg, nneg, min_positives=5,
                          min_negatives=4, memory=memory)
    assert not out.active[3] and out.loss[3].item() == 0
    assert out.loss[3].requires_grad
    out.loss.sum().backward()
    assert pos.grad[3].abs().sum() == 0


def test_bad_memory_is_named():
    pos, npos, neg, nneg, memory = make_case(9)
    wrong = memory._replace(negatives=memory.negatives[:2])
    with pytest.raises(ValueError, match='memory.negatives'):
        cl_class_losses(pos, npos, neg, nneg, memory=wrong)
    wrong = memory._replace(num_positives=memory.num_positives.float())
    with pytest.raises(ValueError, match='memory.num_positives'):
        infonce_class_losses(pos, npos, neg, nneg, memory=wrong)
