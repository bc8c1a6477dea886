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
from typing import NamedTuple, Optional, Sequence

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


def _non_classes_to(labels: torch.Tensor, num_classes: int,
                    ignore_index: Optional[int] = None) -> torch.Tensor:
    """long labels with ignore (and anything that is not a class, which
    check_labels reports) mapped to the extra label K, so that one scatter
    or lookup of size K + 1 covers every pixel.

    ``ignore_index`` is ignored even when it is a class id (a config that
    ignores, say, clutter with ``ignore_index=5`` of 6 classes): a label
    the segmentation loss ignores is no class for CT either.
    """
    labels = labels.long()
    non_class = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        non_class |= labels == ignore_index
    return labels.masked_fill(non_class, num_classes)


def _block_labels(gt: torch.Tensor, patch_size: int, grid_hw: Sequence[int],
                  num_classes: int, ignore_index: int) -> torch.Tensor:
    """long (B * h * w, s * s): the labels of each token's block (padding
    with ``ignore_index``), ignore and non-classes as K, rows in the order
    ``b * h * w + row * w + col``."""
    blocks = _fine_blocks(gt, patch_size, grid_hw, ignore_index)
    return _block_rows(_non_classes_to(blocks, num_classes, ignore_index))


def _block_rows(blocks: torch.Tensor) -> torch.Tensor:
    """(B, h, s, w, s) blocks -> (B * h * w, s * s), one row per token."""
    stride = blocks.shape[2]
    return blocks.permute(0, 1, 3, 2, 4).reshape(-1, stride * stride)


def _presence(rows: torch.Tensor, num_labels: int) -> torch.Tensor:
    """bool (N, num_labels): which labels occur in each row of long labels
    (one scatter, no loop over classes)."""
    presence = torch.zeros(rows.shape[0], num_labels, dtype=torch.bool,
                           device=rows.device)
    return presence.scatter_(1, rows, True)


def _count_pure(low: torch.Tensor, high: torch.Tensor,
                num_classes: int) -> torch.Tensor:
    """long (K,): blocks whose smallest and largest label are class k (a
    block holding ignore, label K, counts for nothing)."""
    label = torch.where(low == high, low, torch.full_like(low, num_classes))
    counts = torch.zeros(num_classes + 1, dtype=torch.long, device=low.device)
    return counts.scatter_add_(0, label, torch.ones_like(label))[:num_classes]


def patch_class_presence(gt: torch.Tensor, patch_size: int,
                         grid_hw: Sequence[int], num_classes: int,
                         ignore_index: int) -> torch.Tensor:
    """Which labels occur inside each token's block.

    Args:
        gt (Tensor): (B, H, W) integer labels, already checked.
        patch_size (int): stride ``s`` of the stage.
        grid_hw (tuple[int, int]): (h, w) token grid of the stage.
        num_classes (int): K.
        ignore_index (int): label of ignored pixels (even a class id).

    Returns:
        Tensor: bool, shape (B * h * w, K + 1). Column k < K tells whether the
        block holds class k; column K whether it holds an ignore pixel. Rows are
        in the order of ``feature.flatten(2)`` / ``permute(0, 2, 3, 1)``:
        ``b * h * w + row * w + col``.
    """
    return _presence(_block_labels(gt, patch_size, grid_hw, num_classes,
                                   ignore_index), num_classes + 1)


def classes_present(gt: torch.Tensor, num_classes: int,
                    ignore_index: int) -> torch.Tensor:
    """bool (K,): class k has at least one pixel in the batch's GT.

    Computed with a scatter rather than ``bincount``/``unique``, which would
    synchronise with the host on CUDA.
    """
    return _labels_seen(_non_classes_to(gt, num_classes, ignore_index),
                        num_classes)


def _labels_seen(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """bool (K,): which classes occur among labels whose non-classes are
    already K (:func:`_non_classes_to`)."""
    seen = torch.zeros(num_classes + 1, dtype=torch.bool,
                       device=labels.device)
    return seen.scatter_(0, labels.flatten().long(), True)[:num_classes]


def positive_counts(gt: torch.Tensor, patch_size: int,
                    grid_hw: Sequence[int], num_classes: int,
                    ignore_index: int) -> torch.Tensor:
    """long (K,): how many tokens of the stage are positives of each class.

    A token is a positive of class k when its whole block is k, i.e. the
    block's smallest and largest label are both k. Computed with a min/max
    per block and one scatter-add: the cost follows the pixels, not K x
    tokens, so it can run on the dataset's classes before the classes
    present are known.

    Args:
        gt (Tensor): (B, H, W) integer labels.
        patch_size, grid_hw, num_classes, ignore_index: the stride, (h, w)
            token grid, K and ignore label, as :func:`patch_class_presence`.

    Returns:
        Tensor: long (K,).
    """
    blocks = _block_labels(gt, patch_size, grid_hw, num_classes,
                           ignore_index)
    return _count_pure(blocks.amin(1), blocks.amax(1), num_classes)


def compact_labels(gt: torch.Tensor, class_ids: torch.Tensor,
                   num_classes: int) -> torch.Tensor:
    """Relabel ``gt`` onto the classes ``class_ids``: class_ids[j] -> j.

    Every other value (ignore, or a class not in ``class_ids``) becomes
    ``len(class_ids)``, the ignore label of the compact labelling. With
    ``class_ids`` = the classes present in the batch, everything downstream
    (patch masks, draws, embeddings, losses) is sized by the classes present
    instead of the dataset's class count.

    Args:
        gt (Tensor): (B, H, W) integer labels.
        class_ids (Tensor): long (K',), distinct classes in [0, num_classes).
        num_classes (int): K, the dataset's classes.

    Returns:
        Tensor: long (B, H, W), labels in [0, K'].
    """
    return _compact_lookup(class_ids, num_classes)[
        _non_classes_to(gt, num_classes)]


def _compact_lookup(class_ids: torch.Tensor, num_classes: int) -> torch.Tensor:
    """long (K + 1,): class_ids[j] -> j, everything else -> len(class_ids)."""
    num_kept = class_ids.numel()
    lookup = torch.full((num_classes + 1,), num_kept, dtype=torch.long,
                        device=class_ids.device)
    lookup[class_ids] = torch.arange(num_kept, device=class_ids.device)
    return lookup


def patch_masks(gt: torch.Tensor, patch_size: int, grid_hw: Sequence[int],
                num_classes: int, ignore_index: int = 255,
                ignore_only_negatives: bool = False) -> PatchMasks:
    """Positive and negative candidate tokens of one stage, for every class.

    Args:
        gt (Tensor): (B, H, W) integer labels.
        patch_size (int): stride ``s`` of the stage.
        grid_hw (tuple[int, int]): (h, w) token grid of the stage.
        num_classes (int): K.
        ignore_index (int): label of ignored pixels (even a class id).
            Default 255.
        ignore_only_negatives (bool): allow blocks made only of ignore pixels
            as negatives (the authors' rule read literally). Default False.

    Returns:
        PatchMasks: positive (K, N), negative (K, N).
    """
    presence = patch_class_presence(gt, patch_size, grid_hw, num_classes,
                                    ignore_index)
    return _masks_from_presence(presence, num_classes, ignore_only_negatives)


# --------------------------------------------------------------------------- #
# every stage at once: one pass over the full-resolution GT
# --------------------------------------------------------------------------- #
class StageLabels(NamedTuple):
    """The GT of a batch cut into the blocks of every stage, in one pass.

    The functions above read the full-resolution mask once per stage (and
    the CT head needed two tables per stage). Here the mask is read once, at
    the finest stride; every coarser stage whose stride is a multiple of it
    is pooled from that fine table (its blocks are unions of fine blocks).
    A stage whose stride does not nest is cut from the mask on its own.

    Attributes:
        labels (Tensor): int32 (B, H, W), the GT with ignore and
            non-classes mapped to K (:func:`_non_classes_to`); int32 because
            CPU min/max reductions over int64 are several times slower.
        low (list[Tensor]): per stage, long (B * h * w,): the smallest label
            in each token's block.
        high (list[Tensor]): per stage, the largest.
        strides (tuple[int]): the stages' strides.
        grids (tuple[tuple[int, int]]): the stages' (h, w) token grids.
        num_classes (int): K.
    """
    labels: torch.Tensor
    low: list
    high: list
    strides: tuple
    grids: tuple
    num_classes: int


def _stage_groups(strides: Sequence[int], grids: Sequence[Sequence[int]]):
    """Stages that share one fine table: list of (fine stride, fine grid in
    cells, [(stage, ratio)]). Stages whose stride is a multiple of the
    finest are one group; each other stage is a group of its own."""
    finest = min(strides)
    nested = [i for i, s in enumerate(strides) if s % finest == 0]
    groups = []
    if nested:
        ratios = {i: strides[i] // finest for i in nested}
        rows = max(grids[i][0] * ratios[i] for i in nested)
        cols = max(grids[i][1] * ratios[i] for i in nested)
        groups.append((finest, (rows, cols),
                       [(i, ratios[i]) for i in nested]))
    for i, s in enumerate(strides):
        if s % finest:
            groups.append((s, tuple(grids[i]), [(i, 1)]))
    return groups


def _fine_blocks(labels: torch.Tensor, stride: int, cells: Sequence[int],
                 fill: int) -> torch.Tensor:
    """(B, rows, stride, cols, stride) view of ``labels`` cropped or padded
    (with ``fill``) to ``cells`` blocks of ``stride`` pixels."""
    rows, cols = cells
    labels = align_gt_to_grid(labels, stride, cells, fill)
    return labels.reshape(labels.shape[0], rows, stride, cols, stride)


def _pool(table: torch.Tensor, grid: Sequence[int], ratio: int,
          reduce) -> torch.Tensor:
    """A (B, rows, cols, ...) fine table -> (B * h * w, ...) for a stage
    whose blocks are ``ratio`` x ``ratio`` fine blocks; ``reduce(t, dim)``
    combines fine blocks (min, max, any)."""
    h, w = grid
    table = table[:, :h * ratio, :w * ratio]
    if ratio > 1:
        table = table.reshape(table.shape[0], h, ratio, w, ratio,
                              *table.shape[3:])
        table = reduce(reduce(table, 4), 2)
    return table.reshape(-1, *table.shape[3:])


def stage_labels(gt: torch.Tensor, strides: Sequence[int],
                 grids: Sequence[Sequence[int]], num_classes: int,
                 ignore_index: Optional[int] = None) -> StageLabels:
    """Block label ranges of every stage from one pass over the GT.

    Every label that is not a class (ignore included) becomes K, and the
    padding of a grid larger than the mask is K too.

    Args:
        gt (Tensor): (B, H, W) integer labels, already checked.
        strides (list[int]): the stages' strides.
        grids (list[tuple[int, int]]): the stages' (h, w) token grids.
        num_classes (int): K.
        ignore_index (int, optional): label of ignored pixels; only needed
            when it is a class id (every other non-class is ignored anyway).

    Returns:
        StageLabels
    """
    labels = _non_classes_to(gt, num_classes, ignore_index).int()
    low: list = [None] * len(strides)
    high: list = [None] * len(strides)
    for stride, cells, members in _stage_groups(strides, grids):
        blocks = _fine_blocks(labels, stride, cells, num_classes)
        # one dimension at a time: a two-dimension reduction over the
        # strided view is several times slower
        fine_low = blocks.amin(4).amin(2)
        fine_high = blocks.amax(4).amax(2)
        for stage, ratio in members:
            low[stage] = _pool(fine_low, grids[stage], ratio,
                               lambda t, d: t.amin(d)).long()
            high[stage] = _pool(fine_high, grids[stage], ratio,
                                lambda t, d: t.amax(d)).long()
    return StageLabels(labels, low, high, tuple(strides),
                       tuple(tuple(g) for g in grids), num_classes)


def stage_classes_present(tables: StageLabels) -> torch.Tensor:
    """bool (K,): :func:`classes_present` from the already relabelled GT of
    :func:`stage_labels` (no second pass mapping the non-classes)."""
    return _labels_seen(tables.labels, tables.num_classes)


def stage_positive_counts(tables: StageLabels) -> torch.Tensor:
    """long (S, K): how many tokens of each stage are positives of each class
    (blocks whose smallest and largest label are that class)."""
    return torch.stack([_count_pure(low, high, tables.num_classes)
                        for low, high in zip(tables.low, tables.high)])


def stage_patch_masks(tables: StageLabels, class_ids: torch.Tensor,
                      ignore_only_negatives: bool = False) -> list:
    """Positive and negative candidates of every stage for ``class_ids``.

    The same masks as :func:`patch_masks` on :func:`compact_labels`, one
    stage at a time: the GT is relabelled onto ``class_ids`` once, the
    which-labels-are-in-the-block table is made once at the finest stride
    and OR-pooled for the coarser stages.

    Args:
        tables (StageLabels): from :func:`stage_labels`.
        class_ids (Tensor): long (K',), distinct classes (those present).
        ignore_only_negatives (bool): see :func:`patch_masks`.

    Returns:
        list[PatchMasks]: per stage, positive and negative (K', N).
    """
    num_kept = class_ids.numel()
    # tables.labels already has every non-class as K: one lookup
    compact = _compact_lookup(class_ids, tables.num_classes).index_select(
        0, tables.labels.flatten()).view(tables.labels.shape)
    masks: list = [None] * len(tables.strides)
    for stride, cells, members in _stage_groups(tables.strides, tables.grids):
        blocks = _fine_blocks(compact, stride, cells, num_kept)
        batch, rows, _, cols, _ = blocks.shape
        presence = _presence(_block_rows(blocks), num_kept + 1).view(
            batch, rows, cols, num_kept + 1)
        for stage, ratio in members:
            stage_presence = _pool(presence, tables.grids[stage], ratio,
                                   lambda t, d: t.any(d))
            masks[stage] = _masks_from_presence(stage_presence, num_kept,
                                                ignore_only_negatives)
    return masks


def _masks_from_presence(presence: torch.Tensor, num_classes: int,
                         ignore_only_negatives: bool) -> PatchMasks:
    """PatchMasks from a bool (N, K + 1) which-labels-are-in-the-block table
    (column K: an ignore pixel)."""
    class_presence = presence[:, :num_classes]
    pure = presence.sum(dim=1) == 1  # exactly one label, maybe only ignore
    positive = (class_presence & pure.unsqueeze(1)).t()
    negative = ~class_presence
    if not ignore_only_negatives:
        negative = negative & class_presence.any(dim=1, keepdim=True)
    return PatchMasks(positive, negative.t())
