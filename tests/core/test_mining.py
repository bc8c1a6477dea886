"""Candidate sampling and hard pair mining on fixed embeddings."""
import math

import pytest
import torch
import torch.nn.functional as F

from ct_mmseg.core import (hard_infonce_triplets, hard_negative_pairs,
                           hard_positive_pairs, sample_candidates)


def unit(angles_deg):
    """(N, 2) unit vectors at the given angles: cos of two = cos(difference)."""
    a = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([a.cos(), a.sin()], dim=-1)


def test_sample_candidates_draws_only_eligible_distinct_tokens():
    eligible = torch.zeros(3, 50, dtype=torch.bool)
    eligible[0, ::5] = True  # 10 eligible
    eligible[1, :3] = True  # 3 eligible, fewer than the bound
    gen = torch.Generator().manual_seed(0)
    cand = sample_candidates(eligible, 6, gen)
    assert cand.index.shape == (3, 6)
    assert cand.count.tolist() == [6, 3, 0]
    for k in range(3):
        chosen = cand.index[k][cand.valid[k]]
        assert eligible[k, chosen].all()
        assert len(set(chosen.tolist())) == len(chosen)
        # valid slots come first
        assert cand.valid[k].tolist() == sorted(cand.valid[k].tolist(),
                                                reverse=True)
    assert set(cand.index[1, :3].tolist()) == {0, 1, 2}


def test_sample_candidates_is_seedable_and_random():
    eligible = torch.ones(2, 1000, dtype=torch.bool)
    a = sample_candidates(eligible, 10, torch.Generator().manual_seed(1))
    b = sample_candidates(eligible, 10, torch.Generator().manual_seed(1))
    c = sample_candidates(eligible, 10, torch.Generator().manual_seed(2))
    assert torch.equal(a.index, b.index)
    assert not torch.equal(a.index, c.index)


def test_sample_bound_larger_than_tokens():
    cand = sample_candidates(torch.ones(1, 4, dtype=torch.bool), 100)
    assert cand.index.shape == (1, 4) and cand.count.item() == 4


def test_hard_negatives_keep_the_most_similar_half():
    anchors = unit([0, 0, 0, 0, 0])[None]
    # cosines with the anchor: cos 10 = .985, cos 120 = -.5, cos 60 = .5,
    # cos 80 = .174 ; the fifth pair is padding (num_pairs = 4)
    negatives = unit([10, 120, 60, 80, 0])[None]
    pairs = hard_negative_pairs(anchors, negatives, torch.tensor([4]), 0.5)
    kept = pairs.similarity[pairs.keep]
    expected = torch.tensor([math.cos(math.radians(10)),
                             math.cos(math.radians(60))], dtype=kept.dtype)
    assert torch.allclose(kept, expected)


def test_hard_positives_pair_halves_and_keep_least_similar():
    # six positives: pairs (0,3), (1,4), (2,5) at angle differences 90, 10, 45
    positives = unit([0, 0, 0, 90, 10, 45])[None]
    pairs = hard_positive_pairs(positives, torch.tensor([6]), 0.5,
                                min_positives=2)
    kept = pairs.similarity[pairs.keep]
    # floor(3 * 0.5) = 1 pair kept: the least similar, cos 90 = 0
    assert kept.shape == (1,) and abs(kept.item()) < 1e-9
    pairs = hard_positive_pairs(positives, torch.tensor([6]), 1.0,
                                min_positives=2)
    assert torch.allclose(pairs.similarity[pairs.keep].sort().values,
                          torch.tensor([0, math.cos(math.radians(45)),
                                        math.cos(math.radians(10))],
                                       dtype=torch.float64))


def test_hard_positives_need_min_positives():
    positives = F.normalize(torch.randn(1, 8, 4), dim=-1)
    pairs = hard_positive_pairs(positives, torch.tensor([8]), 0.5,
                                min_positives=10)
    assert not pairs.keep.any()


def test_infonce_triplets_sorted_by_pair_similarity():
    pos = unit([0, 1, 2, 3, 4, 5])[None]
    # pair similarities: angle gaps 170, 5, 100, 20, 60, 90
    neg = unit([170, 6, 102, 23, 64, 95])[None]
    q, k, qv, n, nv = hard_infonce_triplets(pos, neg, torch.tensor([6]), 0.5)
    # kept: 3 hardest pairs = gaps 5 (i=1), 20 (i=3), 60 (i=4); with M = 6
    # at most floor(6 * 0.5) = 3 pairs and 3 // 2 = 1 query can be valid, so
    # that is the width of the negative and query axes
    assert nv[0].tolist() == [True, True, True]
    assert torch.allclose(n[0, :3], neg[0, [1, 3, 4]])
    # one query (3 // 2) = kept positive 1, its key = kept positive 3
    assert qv[0].tolist() == [True]
    assert torch.allclose(q[0, 0], pos[0, 1]) and torch.allclose(k[0, 0],
                                                                 pos[0, 3])


def test_infonce_widths_are_what_can_be_valid():
    pos = F.normalize(torch.randn(3, 2000, 8), dim=-1)
    neg = F.normalize(torch.randn(3, 2000, 8), dim=-1)
    q, k, qv, n, nv = hard_infonce_triplets(
        pos, neg, torch.tensor([2000, 7, 0]), 0.5)
    # P = floor(2000 * 0.5) = 1000 negatives, Q = 500 queries
    assert q.shape == k.shape == (3, 500, 8) and n.shape == (3, 1000, 8)
    # class 1: 7 pairs -> floor(3.5) = 3 kept -> 1 query; class 2: none
    assert nv.sum(1).tolist() == [1000, 3, 0]
    assert qv.sum(1).tolist() == [500, 1, 0]


def test_hard_positive_pairs_axis_is_half_the_draw():
    positives = F.normalize(torch.randn(2, 9, 4), dim=-1)
    pairs = hard_positive_pairs(positives, torch.tensor([9, 4]), 1.0,
                                min_positives=2)
    assert pairs.similarity.shape == (2, 4)  # 9 // 2
    assert pairs.keep.sum(1).tolist() == [4, 2]


def test_random_selection_keeps_the_first_pairs_of_the_draw():
    """The authors' CL as shipped: no effective sort, the first half of the
    (already shuffled) pairs is kept, in draw order."""
    anchors = unit([0, 0, 0, 0, 0])[None]
    negatives = unit([10, 120, 60, 80, 0])[None]
    pairs = hard_negative_pairs(anchors, negatives, torch.tensor([4]), 0.5,
                                selection='random')
    # floor(4 * 0.5) = 2 pairs: pairs 0 and 1 (cos 10, cos 120), unsorted
    assert pairs.keep[0].tolist() == [True, True, False, False, False]
    assert torch.allclose(pairs.similarity[0, :2], torch.tensor(
        [math.cos(math.radians(10)), math.cos(math.radians(120))],
        dtype=pairs.similarity.dtype))
    positives = unit([0, 0, 0, 90, 10, 45])[None]
    pairs = hard_positive_pairs(positives, torch.tensor([6]), 0.5,
                                min_positives=2, selection='random')
    # pairs (0,3), (1,4), (2,5); floor(3 * .5) = 1 kept: the first, cos 90
    assert pairs.keep[0].tolist() == [True, False, False]
    assert abs(pairs.similarity[0, 0].item()) < 1e-9


def test_unknown_selection_is_refused():
    with pytest.raises(ValueError, match='pair_selection'):
        hard_negative_pairs(unit([0])[None], unit([0])[None],
                            torch.tensor([1]), 0.5, selection='best')


def test_take_rows_by_hand_and_its_gradient():
    """Row index[k, r] of class k; repeated rows get summed gradients."""
    from ct_mmseg.core.mining import take_rows
    values = torch.arange(12.0).view(2, 3, 2).requires_grad_()
    rows = take_rows(values, torch.tensor([[2, 0, 2], [1, 1, 0]]))
    assert rows.tolist() == [[[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]],
                             [[8.0, 9.0], [8.0, 9.0], [6.0, 7.0]]]
    rows.sum().backward()
    assert values.grad[:, :, 0].tolist() == [[1.0, 0.0, 2.0],
                                             [1.0, 2.0, 0.0]]
