"""Mixed-patch positives with a purity threshold, checked against values
worked out by hand and against a slow per-block reference."""
import math

import pytest
import torch

from ct_mmseg.core import (check_purity, majority_positive_counts,
                           majority_positive_masks, stage_labels,
                           stage_majority_labels, stage_patch_masks,
                           stage_positive_counts)

IGN = 255
X = IGN  # an ignore pixel in the blocks below
K = 4  # classes 0..3 in the hand-made masks; K = 4 is "no class"

# 4 x 4 blocks (one token each at stride 4) of the hand-made mask
A = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 2, 2, 2]]  # 13 c + 3 d
B = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2]]  # 12 c + 4 d
C = [[0, 0, 0, 0], [0, 0, 0, 0], [3, 3, 3, 3], [3, 3, 3, 3]]  # 8 / 8 split
D = [[2, 2, 2, 2], [2, 2, 2, 2], [2, 2, X, X], [X, X, X, X]]  # 10 c + 6 ign
E = [[X] * 4] * 4                                             # all ignore
F = [[1] * 4] * 4                                             # pure 1
G = [[0] * 4] * 3 + [[0, 0, 0, X]]                            # 15 c + 1 ign
H = [[3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 0, 0]]  # 14 c + 2 d


def _tile(block_rows):
    """Assemble a (H, W) mask from rows of 4 x 4 blocks."""
    return torch.cat([torch.cat([torch.tensor(b) for b in row], dim=1)
                      for row in block_rows], dim=0)


# 8 x 16 mask: stride 4 -> 2 x 4 tokens A B C D / E F G H,
# stride 8 -> 1 x 2 tokens (A B E F) and (C D G H).
MASK = _tile([[A, B, C, D], [E, F, G, H]])
STRIDES = (4, 8)
GRIDS = ((2, 4), (1, 2))

# Stride 4, shares over the valid pixels of each block:
#   A 13/16 = .8125 of 1      B 12/16 = .75 of 1    C 8/16 of 0 and of 3
#   D 10/10 of 2              E no valid pixel      F 16/16 of 1
#   G 15/15 of 0              H 14/16 = .875 of 3
# Stride 8: left (A B E F) holds 41 of 1, 7 of 2, 16 ignore: 41/48 = .854
#           right (C D G H) holds 25 of 0, 22 of 3, 10 of 2: 25/57 = .44
EXPECTED = {
    0.75: ([1, 1, K, 2, K, 1, 0, 3], [1, K]),   # B passes at equality
    0.8: ([1, K, K, 2, K, 1, 0, 3], [1, K]),
    0.99: ([K, K, K, 2, K, 1, 0, K], [K, K]),
}


def _majority(gt, strides, grids, purity, num_classes=K):
    tables = stage_labels(gt, strides, grids, num_classes, IGN)
    return stage_majority_labels(tables, purity)


def _lists(labels):
    return [stage.tolist() for stage in labels]


def test_hand_made_mask_stride_4_and_8():
    for purity, expected in EXPECTED.items():
        majority = _majority(MASK[None], STRIDES, GRIDS, purity)
        assert all(m.dtype == torch.long for m in majority)
        assert [m.shape for m in majority] == [(8,), (2,)]
        assert _lists(majority) == list(expected), purity


def test_exact_threshold_is_not_subject_to_float_rounding():
    # 0.7 * 10 == 7.000000000000001 in floats; a block of 7 c + 3 d must
    # still pass at purity 0.7 (and fail just above)
    gt = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 2, 2, 2]])[None]
    assert _lists(_majority(gt, (10,), ((1, 1),), 0.7)) == [[1]]
    assert _lists(_majority(gt, (10,), ((1, 1),), 0.700001)) == [[K]]


def test_a_tie_is_a_positive_of_no_class_even_just_above_one_half():
    # block C is 8 of 0 and 8 of 3: neither is a positive, however close to
    # one half the purity is
    majority = _majority(MASK[None], STRIDES, GRIDS, 0.5000001)
    assert majority[0].tolist()[2] == K


def test_counts_and_masks_for_a_subset_of_classes_not_ascending():
    majority = _majority(MASK[None], STRIDES, GRIDS, 0.75)
    counts = majority_positive_counts(majority, K)
    assert counts.dtype == torch.long
    assert torch.equal(counts, torch.tensor([[1, 3, 1, 1],
                                             [0, 1, 0, 0]]))
    masks = majority_positive_masks(majority, torch.tensor([3, 1]), K)
    assert [m.dtype for m in masks] == [torch.bool, torch.bool]
    assert torch.equal(masks[0], torch.tensor(
        [[False, False, False, False, False, False, False, True],    # 3
         [True, True, False, False, False, True, False, False]]))   # 1
    assert torch.equal(masks[1], torch.tensor([[False, False],
                                               [True, False]]))
    # one class asked for, and a class with no positive at all
    masks = majority_positive_masks(majority, torch.tensor([2]), K)
    assert masks[0].tolist() == [[False, False, False, True,
                                  False, False, False, False]]
    masks = majority_positive_masks(
        _majority(MASK[None], STRIDES, GRIDS, 0.99), torch.tensor([3]), K)
    assert not masks[0].any() and not masks[1].any()


def test_batch_token_order_is_image_then_row_then_column():
    # image 1 is image 0 turned by 180 degrees: its blocks come in reverse
    # order, each holding the same pixels
    gt = torch.stack([MASK, MASK.flip(0, 1)])
    majority = _majority(gt, STRIDES, GRIDS, 0.75)
    assert _lists(majority) == [[1, 1, K, 2, K, 1, 0, 3,
                                 3, 0, 1, K, 2, K, 1, 1],
                                [1, K, K, 1]]
    counts = majority_positive_counts(majority, K)
    assert torch.equal(counts, torch.tensor([[2, 6, 2, 2], [0, 2, 0, 0]]))


def test_grid_larger_than_mask_padding_is_not_valid():
    # 6 x 6 mask, stride 4 on a 2 x 2 grid covers 8 x 8 pixels: padded
    gt = torch.tensor([[3, 3, 3, 3, 2, 2],
                       [3, 3, 3, 3, 2, 2],
                       [3, 3, 3, 3, 2, 2],
                       [3, 3, 3, 3, 2, 1],
                       [0, 0, 0, 0, 1, 1],
                       [0, 0, 0, 0, 1, 3]])[None]
    # TL 16/16 of 3; TR 7 of 2 + 1 of 1 (+ 8 padding): 7/8 = .875;
    # BL 8/8 of 0 (+ 8 padding); BR 3 of 1 + 1 of 3 (+ 12 padding): .75.
    # Stride 8 (1 x 1, pooled from stride 4): 17 of 3 in 36: no class.
    strides, grids = (4, 8), ((2, 2), (1, 1))
    assert _lists(_majority(gt, strides, grids, 0.75)) == [[3, 2, 0, 1],
                                                           [K]]
    assert _lists(_majority(gt, strides, grids, 0.8)) == [[3, 2, 0, K],
                                                          [K]]
    # the pure path rejects the padded blocks
    tables = stage_labels(gt, strides, grids, K, IGN)
    assert torch.equal(stage_positive_counts(tables),
                       torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0]]))


def test_grid_smaller_than_mask_crops():
    # 5 x 5 mask, stride 4 on a 1 x 1 grid: the last row and column (all 2)
    # are not covered; the block is 12 of 1 + 4 of 2
    gt = torch.tensor([[1, 1, 1, 1, 2],
                       [1, 1, 1, 1, 2],
                       [1, 1, 1, 1, 2],
                       [2, 2, 2, 2, 2],
                       [2, 2, 2, 2, 2]])[None]
    assert _lists(_majority(gt, (4,), ((1, 1),), 0.75)) == [[1]]
    assert _lists(_majority(gt, (4,), ((1, 1),), 0.76)) == [[K]]


def test_strides_that_do_not_nest_and_an_odd_ratio():
    # 12 x 12: rows 0-7 are 1 in columns 0-6 and 2 in columns 7-11,
    # rows 8-11 are ignore. Strides 4 and 12 nest (ratio 3), 6 does not.
    gt = torch.full((12, 12), IGN)
    gt[:8, :7] = 1
    gt[:8, 7:] = 2
    strides, grids = (4, 6, 12), ((3, 3), (2, 2), (1, 1))
    # stride 4, column blocks: 0-3 all 1; 4-7 = 12 of 1 + 4 of 2; 8-11 all 2
    # stride 6: rows 0-5: left all 1, right 6 of 1 + 30 of 2 = .833;
    #           rows 6-11: 12 valid pixels: left all 1, right 10/12 of 2
    # stride 12: 56 of 1, 40 of 2: 56/96 = .583
    assert _lists(_majority(gt[None], strides, grids, 0.75)) == [
        [1, 1, 2, 1, 1, 2, K, K, K], [1, 2, 1, 2], [K]]
    assert _lists(_majority(gt[None], strides, grids, 0.8)) == [
        [1, K, 2, 1, K, 2, K, K, K], [1, 2, 1, 2], [K]]
    assert _lists(_majority(gt[None], strides, grids, 0.9)) == [
        [1, K, 2, 1, K, 2, K, K, K], [1, K, 1, K], [K]]
    assert _lists(_majority(gt[None], strides, grids, 0.55)) == [
        [1, 1, 2, 1, 1, 2, K, K, K], [1, 2, 1, 2], [1]]


def test_purity_just_below_one_matches_the_pure_path_without_ignore():
    torch.manual_seed(0)
    num_classes = 5
    # blocky random labels (so that pure blocks exist) and some noise
    coarse = torch.randint(0, num_classes, (2, 4, 6))
    gt = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)
    noise = torch.rand(gt.shape) < 0.02
    gt = torch.where(noise, torch.randint(0, num_classes, gt.shape), gt)
    strides = (2, 4, 8, 16, 3)
    grids = ((16, 24), (8, 12), (4, 6), (2, 3), (10, 16))  # no padding
    tables = stage_labels(gt, strides, grids, num_classes, IGN)
    majority = stage_majority_labels(tables, 0.999999)
    counts = stage_positive_counts(tables)
    assert counts.sum() > 0
    assert torch.equal(majority_positive_counts(majority, num_classes),
                       counts)
    class_ids = torch.tensor([4, 0, 2])
    pure = stage_patch_masks(tables, class_ids)
    for mask, stage in zip(majority_positive_masks(majority, class_ids,
                                                   num_classes), pure):
        assert torch.equal(mask, stage.positive)


def test_with_ignore_pixels_the_pure_path_differs():
    # Block D of the hand-made mask (10 of class 2 and 6 ignore pixels) is a
    # positive of 2 at any purity here, shares being over the valid pixels,
    # but not on the pure path, where an ignore pixel disqualifies a block.
    # So purity 1 is not computed by this module: the head keeps the pure
    # path for purity 1.
    tables = stage_labels(MASK[None], STRIDES, GRIDS, K, IGN)
    for purity in (0.999999, 1.0):
        majority = stage_majority_labels(tables, purity)
        assert majority[0][3] == 2
        assert majority_positive_counts(majority, K)[0].tolist() == \
            [1, 1, 1, 0]
    pure = stage_patch_masks(tables, torch.tensor([2]))
    assert not pure[0].positive[0, 3]
    assert stage_positive_counts(tables)[0].tolist() == [0, 1, 0, 0]


def _reference(gt, strides, grids, num_classes, purity):
    """Slow majority labels: an explicit bincount per block."""
    quantised = max(round(purity * 10**6), 500001)
    out = []
    for stride, (h, w) in zip(strides, grids):
        labels = []
        for b in range(gt.shape[0]):
            for row in range(h):
                for col in range(w):
                    block = gt[b, row * stride:(row + 1) * stride,
                               col * stride:(col + 1) * stride].flatten()
                    # pixels outside the mask (padding) are simply absent
                    block = block[(block >= 0) & (block < num_classes)]
                    label = num_classes
                    if block.numel():
                        counts = torch.bincount(
                            block, minlength=num_classes).tolist()
                        for c in range(num_classes):
                            if (counts[c] * 10**6
                                    >= quantised * block.numel()):
                                label = c
                    labels.append(label)
        out.append(torch.tensor(labels))
    return out


def test_150_classes_against_a_slow_reference():
    torch.manual_seed(1)
    num_classes = 150
    # few classes per area so that mixed positives occur, then noise
    coarse = torch.randint(0, num_classes, (2, 6, 6))
    gt = coarse.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, :44, :46]
    noise = torch.rand(gt.shape)
    gt = torch.where(noise < 0.15, torch.randint(0, num_classes, gt.shape),
                     gt)
    gt[noise > 0.93] = IGN
    gt[:, 36:, :12] = IGN  # an all-ignore corner
    # padded (stride 4 and 12: 48 x 48), cropped (stride 8 and 16), both
    # (stride 6: 42 x 48); 8, 16 and 12 nest in 4 (12 with ratio 3), 6 not
    strides = (4, 8, 16, 6, 12)
    grids = ((12, 12), (5, 5), (2, 2), (7, 8), (4, 4))
    tables = stage_labels(gt, strides, grids, num_classes, IGN)
    class_ids = torch.tensor([149, 3, 77, 0, 12, 100])
    seen_positive = False
    for purity in (0.51, 0.6, 0.75, 0.9, 1.0):
        majority = stage_majority_labels(tables, purity)
        reference = _reference(gt, strides, grids, num_classes, purity)
        for got, want in zip(majority, reference):
            assert torch.equal(got, want), purity
        seen_positive |= any(bool((m < num_classes).any()) for m in majority)
        expected_counts = torch.stack([
            torch.bincount(m, minlength=num_classes + 1)[:num_classes]
            for m in reference])
        assert torch.equal(majority_positive_counts(majority, num_classes),
                           expected_counts)
        for mask, want in zip(majority_positive_masks(majority, class_ids,
                                                      num_classes),
                              reference):
            assert mask.shape == (6, want.numel())
            for j, c in enumerate(class_ids.tolist()):
                assert torch.equal(mask[j], want == c)
    assert seen_positive


@pytest.mark.parametrize('bad', [0.5, 0.25, 0, -1, 1.0000001, 2, math.nan,
                                 math.inf, '0.8', None, True, False])
def test_bad_purity_raises_naming_the_key(bad):
    with pytest.raises(ValueError, match='positive_purity') as info:
        check_purity(bad)
    assert repr(bad) in str(info.value)
    tables = stage_labels(MASK[None], STRIDES, GRIDS, K, IGN)
    with pytest.raises(ValueError, match='positive_purity'):
        stage_majority_labels(tables, bad)


def test_good_purity_is_returned_as_a_float():
    assert check_purity(0.75) == 0.75
    assert check_purity(1) == 1.0 and isinstance(check_purity(1), float)
    assert check_purity(0.500001) == 0.500001
