# The reference implementation the fused paths are tested against: a copy
# of ct_mmseg/core/patch_labels.py at commit 3afce7b, with every tensor sized
# by the dataset's class count K. Used only by
# tests/models/test_class_scaling.py. Do not edit.
"""Ground-truth patch labels: which backbone tokens are positives / negatives.

For a stage of stride ``s`` every token covers an ``s x s`` block of the
ground-truth mask. For each class ``c`` a token is

* a **positive candidate** when every pixel of its block is ``c``
  (an ignore pixel therefore disqualifies it), and
* a **negative candidate** when no pixel of its block is ``c``. Mixed blocks
  and ignore pixels are allowed, as in the authors' code; only blocks made
  *entirely* of ignore pixels (image padding, unlabelled areas) are excluded by
  default (``ignore_only_negatives=False``), because they carry no label at all.

Everything is vectorised: one scatter per stage, no loop over patches, pixels
or classes, and no host-device synchronisation.
"""
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F


class PatchMasks(NamedTuple):
    """Per-class candidate masks of one stage.

    Attributes:
        positive (Tensor): bool, shape (K, N): token n is made only of class k.
        negative (Tensor): bool, shape (K, N): token n holds no pixel of class k.
    """
    positive: torch.Tensor
    negative: torch.Tensor


def align_gt_to_grid(gt: torch.Tensor, patch_size: int,
                     grid_hw: Sequence[int], ignore_index: int) -> torch.Tensor:
    """Pad (with ``ignore_index``) or crop a GT mask to ``grid * patch_size``.

    Backbones such as Swin pad the image on the bottom/right to a multiple of
    their stride, so the token grid may cover more pixels than the mask: the
    extra pixels are filled with ``ignore_index``. A grid covering fewer pixels
    (a backbone that floors) loses the uncovered bottom/right rows/columns.

    Args:
        gt (Tensor): (B, H, W) integer labels.
        patch_size (int): the stage's stride ``s``.
        grid_hw (tuple[int, int]): (h, w) of the stage's token grid.
        ignore_index (int): label of pixels that carry no class.

    Returns:
        Tensor: (B, h * s, w * s) labels.
    """
    target_h, target_w = grid_hw[0] * patch_size, grid_hw[1] * patch_size
    height, width = gt.shape[-2:]
    gt = gt[:, :target_h, :target_w]
    pad_h, pad_w = target_h - gt.shape[-2], target_w - gt.shape[-1]
    if pad_h > 0 or pad_w > 0:
        gt = F.pad(gt, (0, pad_w, 0, pad_h), value=ignore_index)
    return gt


def check_labels(gt: torch.Tensor, num_classes: int, ignore_index: int,
                 name: str = 'gt_sem_seg') -> None:
    """Fail loudly on labels that are neither a class nor ``ignore_index``.

    On CUDA the check is asynchronous (no host sync); the error then surfaces
    as a device-side assertion at the next synchronisation point.
    """
    bad = ((gt < 0) | (gt >= num_classes)) & (gt != ignore_index)
    message = (f'{name} holds labels outside [0, num_classes={num_classes}) '
               f'that are not ignore_index={ignore_index}; check num_classes '
               'and reduce_zero_label in the dataset config')
    if gt.is_cuda:
        torch._assert_async(~bad.any(), message)
    elif bool(bad.any()):
        found = torch.unique(gt[bad])[:10].tolist()
        raise ValueError(f'{message} (found {found})')


def patch_class_presence(gt: torch.Tensor, patch_size: int,
                         grid_hw: Sequence[int], num_classes: int,
                         ignore_index: int) -> torch.Tensor:
    """Which labels occur inside each token's block.

    Args:
        gt (Tensor): (B, H, W) integer labels, already checked.
        patch_size (int): stride ``s`` of the stage.
        grid_hw (tuple[int, int]): (h, w) token grid of the stage.
        num_classes (int): K.
        ignore_index (int): label of ignored pixels.

    Returns:
        Tensor: bool, shape (B * h * w, K + 1). Column k < K tells whether the
        block holds class k; column K whether it holds an ignore pixel. Rows are
        in the order of ``feature.flatten(2)`` / ``permute(0, 2, 3, 1)``:
        ``b * h * w + row * w + col``.
    """
    h, w = grid_hw
    s = patch_size
    gt = align_gt_to_grid(gt, s, grid_hw, ignore_index).long()
    # Map ignore (and anything that is not a class, which check_labels
    # reports) to the extra column K so one scatter covers every pixel.
    not_a_class = (gt < 0) | (gt >= num_classes)
    gt = gt.masked_fill(not_a_class, num_classes)  # no full-size temporary
    blocks = gt.reshape(gt.shape[0], h, s, w, s).permute(0, 1, 3, 2, 4)
    blocks = blocks.reshape(-1, s * s)
    presence = torch.zeros(blocks.shape[0], num_classes + 1,
                           dtype=torch.bool, device=gt.device)
    return presence.scatter_(1, blocks, True)


def classes_present(gt: torch.Tensor, num_classes: int,
                    ignore_index: int) -> torch.Tensor:
    """bool (K,): class k has at least one pixel in the batch's GT.

    Computed with a scatter rather than ``bincount``/``unique``, which would
    synchronise with the host on CUDA.
    """
    labels = gt.long().flatten()
    labels = labels.masked_fill((labels < 0) | (labels >= num_classes),
                                num_classes)
    seen = torch.zeros(num_classes + 1, dtype=torch.bool, device=gt.device)
    return seen.scatter_(0, labels, True)[:num_classes]


def patch_masks(gt: torch.Tensor, patch_size: int, grid_hw: Sequence[int],
                num_classes: int, ignore_index: int = 255,
                ignore_only_negatives: bool = False) -> PatchMasks:
    """Positive and negative candidate tokens of one stage, for every class.

    Args:
        gt (Tensor): (B, H, W) integer labels.
        patch_size (int): stride ``s`` of the stage.
        grid_hw (tuple[int, int]): (h, w) token grid of the stage.
        num_classes (int): K.
        ignore_index (int): label of ignored pixels. Default 255.
        ignore_only_negatives (bool): allow blocks made only of ignore pixels
            as negatives (the authors' rule read literally). Default False.

    Returns:
        PatchMasks: positive (K, N), negative (K, N).
    """
    presence = patch_class_presence(gt, patch_size, grid_hw, num_classes,
                                    ignore_index)
    class_presence = presence[:, :num_classes]
    pure = presence.sum(dim=1) == 1  # exactly one label, maybe only ignore
    positive = (class_presence & pure.unsqueeze(1)).t()
    negative = ~class_presence
    if not ignore_only_negatives:
        negative = negative & class_presence.any(dim=1, keepdim=True)
    return PatchMasks(positive, negative.t())
