"""GT patch labels, checked against masks worked out by hand."""
import pytest
import torch

from ct_mmseg.core import (align_gt_to_grid, check_labels, classes_present,
                           patch_masks)

IGN = 255
# 4 x 4 mask, 2 x 2 patches (stride 2), patch order: TL, TR, BL, BR.
#   TL: all 0           -> positive 0
#   TR: 1,1,1,ignore    -> positive for nothing (ignore pixel), negative 0, 2
#   BL: all 2           -> positive 2
#   BR: 0,0,0,1         -> mixed: negative only for 2
MASK = torch.tensor([[0, 0, 1, 1],
                     [0, 0, 1, IGN],
                     [2, 2, 0, 0],
                     [2, 2, 0, 1]])
# its masks (K = 3, stride 2): (K, 4) bool, one row per class, one column
# per patch
MASK_POSITIVE = [[True, False, False, False],
                 [False, False, False, False],
                 [False, False, True, False]]
MASK_NEGATIVE = [[False, True, True, False],
                 [True, False, True, False],
                 [True, True, False, True]]


def test_positive_and_negative_masks_by_hand():
    masks = patch_masks(MASK[None], 2, (2, 2), num_classes=3,
                        ignore_index=IGN)
    assert masks.positive.tolist() == MASK_POSITIVE
    assert masks.negative.tolist() == MASK_NEGATIVE


def test_patch_order_follows_feature_flattening_over_batch():
    gt = torch.stack([MASK, torch.full_like(MASK, 1)])
    masks = patch_masks(gt, 2, (2, 2), num_classes=3, ignore_index=IGN)
    # tokens 4..7 belong to image 1, every one a pure class-1 patch
    assert masks.positive[1].tolist() == [False] * 4 + [True] * 4
    assert masks.negative[0, 4:].all() and masks.negative[2, 4:].all()


def test_ignore_only_patches_are_not_negatives_unless_asked():
    gt = torch.full((1, 4, 4), IGN)
    gt[0, :2, :2] = 1
    default = patch_masks(gt, 2, (2, 2), 3, IGN)
    assert default.negative[0].tolist() == [True, False, False, False]
    literal = patch_masks(gt, 2, (2, 2), 3, IGN, ignore_only_negatives=True)
    assert literal.negative[0].tolist() == [True, True, True, True]
    assert not default.positive.any(dim=0)[1:].any()


def test_grid_larger_than_mask_pads_with_ignore():
    # stride 3 on a 4 x 4 mask: a 2 x 2 grid covers 6 x 6 pixels, padded.
    masks = patch_masks(MASK[None], 3, (2, 2), 3, IGN)
    padded = align_gt_to_grid(MASK[None], 3, (2, 2), IGN)
    assert padded.shape == (1, 6, 6)
    assert (padded[0, 4:] == IGN).all() and (padded[0, :, 4:] == IGN).all()
    # TL block rows 0-2, cols 0-2 = [0,0,1],[0,0,1],[2,2,0]: mixed, no
    # positive; it holds 0, 1 and 2, so it is negative for no class.
    assert not masks.positive.any()
    assert masks.negative[:, 0].tolist() == [False, False, False]
    # TR block = [1,ign,ign],[ign,ign,ign],[0,ign,ign] -> negative for 2 only
    assert masks.negative[:, 1].tolist() == [False, False, True]


def test_grid_smaller_than_mask_crops():
    masks = patch_masks(MASK[None], 2, (1, 1), 3, IGN)  # only the TL block
    assert masks.positive[:, 0].tolist() == [True, False, False]


def test_classes_present_ignores_ignore():
    assert classes_present(MASK[None], 4, IGN).tolist() == [
        True, True, True, False]
    assert not classes_present(torch.full((1, 3, 3), IGN), 4, IGN).any()


def test_bad_labels_raise_with_the_tensor_and_key_named():
    bad = MASK.clone()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match=r'gt_sem_seg.*num_classes=3.*\[7\]'):
        check_labels(bad[None], 3, IGN)
    check_labels(MASK[None], 3, IGN)  # valid labels pass


def test_stride_one_means_each_pixel_is_a_patch():
    masks = patch_masks(MASK[None], 1, (4, 4), 3, IGN)
    flat = MASK.flatten()
    for c in range(3):
        assert masks.positive[c].tolist() == (flat == c).tolist()
        assert masks.negative[c].tolist() == ((flat != c) &
                                              (flat != IGN)).tolist()


def test_positive_counts_by_hand():
    from ct_mmseg.core import positive_counts
    # 4x4 GT, stride 2 -> four 2x2 blocks:
    #   [0 0 | 1 1]   block (0,0) all 0 -> positive of 0
    #   [0 0 | 1 2]   block (0,1) mixed 1/2 -> nothing
    #   [255 255|2 2] block (1,0) all ignore -> nothing
    #   [255 255|2 2] block (1,1) all 2 -> positive of 2
    gt = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 2],
                        [255, 255, 2, 2], [255, 255, 2, 2]]])
    counts = positive_counts(gt, 2, (2, 2), num_classes=4, ignore_index=255)
    assert counts.tolist() == [1, 0, 1, 0]
    # a grid that pads (Swin): the extra pixels are ignore, not positives
    counts = positive_counts(gt[:, :3, :3], 2, (2, 2), 4, 255)
    assert counts.tolist() == [1, 0, 0, 0]


def test_an_ignore_index_that_is_a_class_id_is_no_class():
    """ignore_index=1 of 3 classes (as a config ignoring Potsdam's clutter
    with ignore_index=5 does): label 1 is ignored like 255 would be, in the
    per-stage masks, the classes present and the all-stage tables."""
    from ct_mmseg.core import (stage_classes_present, stage_labels,
                               stage_patch_masks)
    as_class_id = MASK.clone()
    as_class_id[as_class_id == IGN] = 1  # the TR block is now all label 1
    as_255 = MASK.clone()
    as_255[MASK == 1] = IGN
    by_id = patch_masks(as_class_id[None], 2, (2, 2), 3, ignore_index=1)
    by_255 = patch_masks(as_255[None], 2, (2, 2), 3, ignore_index=IGN)
    assert torch.equal(by_id.positive, by_255.positive)
    assert torch.equal(by_id.negative, by_255.negative)
    # by hand: no token is a positive of class 1, every token holding a
    # class is a negative of it (as of any absent class), and the TR block
    # (only ignore now) is a negative of nothing
    assert not by_id.positive[1].any()
    assert by_id.negative[1].tolist() == [True, False, True, True]
    assert by_id.negative[:, 1].tolist() == [False, False, False]
    assert classes_present(as_class_id[None], 3, 1).tolist() == [
        True, False, True]
    ids = torch.tensor([0, 2])
    tables = [stage_labels(gt[None], [2], [(2, 2)], 3, ignore)
              for gt, ignore in ((as_class_id, 1), (as_255, IGN))]
    for t in tables:
        assert stage_classes_present(t).tolist() == [True, False, True]
    for got, want in zip(*(stage_patch_masks(t, ids, False) for t in tables)):
        assert torch.equal(got.positive, want.positive)
        assert torch.equal(got.negative, want.negative)
    # padding with a class-id ignore_index is no class either
    padded = patch_masks(as_class_id[None], 3, (2, 2), 3, ignore_index=1)
    padded_255 = patch_masks(as_255[None], 3, (2, 2), 3, ignore_index=IGN)
    assert torch.equal(padded.positive, padded_255.positive)
    assert torch.equal(padded.negative, padded_255.negative)
