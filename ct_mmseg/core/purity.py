"""Mixed-patch positives: a token is a positive of the class that fills at
least a share ``purity`` (tau) of its block.

For a stage of stride ``s`` every token covers an ``s x s`` block of the
ground truth. Its *valid* pixels are those holding a class (ignore, any other
non-class label and the padding of a grid larger than the mask are not
valid). With ``1/2 < tau <= 1`` the token's majority label is

* the class ``c`` whose pixel count in the block is at least ``tau`` times
  the number of valid pixels of the block, and
* ``K`` (no class) when no class reaches that share or the block has no
  valid pixel.

Because ``tau > 1/2`` a block is a positive of at most one class. Shares are
taken over the valid pixels only, so a block of class ``c`` plus some ignore
pixels is a positive of ``c``.

This module does **not** compute the paper's rule for ``tau = 1``. The paper
(and :mod:`.patch_labels`) makes a token a positive of ``c`` only when every
pixel of its block is ``c``, so a single ignore pixel disqualifies the
block; :func:`stage_majority_labels` with ``purity=1`` would instead accept
``c`` plus ignore pixels. The head therefore keeps the pure-patch path
(:func:`.patch_labels.stage_positive_counts`,
:func:`.patch_labels.stage_patch_masks`) for ``tau = 1`` and uses this module
for ``tau < 1`` only. Negatives are the same under both rules (a token is a
negative of ``c`` when no pixel of its block is ``c``) and are not computed
here.

The comparison is exact: ``purity`` is taken in millionths (``q =
round(purity * 10**6)``, at least 500001 so that the rule stays strictly above
one half) and a class count ``n`` of a block with ``v`` valid pixels passes
when ``n * 10**6 >= q * v``, in integers.

Finding the class is flat in the number of classes K: only a class holding
more than half of the valid pixels can pass, and that class is found with a
pairing majority vote (Boyer-Moore) reduced as a tree over the pixels of each
block, then counted with one comparison per pixel. The votes of the finest
stride are merged again for every coarser stage whose stride is a multiple of
it, as :func:`.patch_labels.stage_labels` does with its minima and maxima.
Nothing of size (tokens, K) is built, and there is no loop over patches,
pixels or classes and no host-device synchronisation.
"""
import numbers
from typing import List, Sequence, Tuple

import torch

from .patch_labels import (StageLabels, _compact_lookup, _fine_blocks,
                           _pool, _stage_groups)

_SCALE = 10**6  # purity is compared in millionths


def check_purity(purity) -> float:
    """Validate the ``positive_purity`` setting.

    Args:
        purity (float): the share of a token's valid pixels its class must
            fill; ``0.5 < purity <= 1``.

    Returns:
        float: ``purity`` as a float.

    Raises:
        ValueError: ``purity`` is not a real number (a bool counts as not a
            number), is not above one half or is above one.
    """
    if (isinstance(purity, bool) or not isinstance(purity, numbers.Real)
            or not 0.5 < float(purity) <= 1):  # NaN fails the comparison
        raise ValueError(
            'positive_purity must be a number with 0.5 < positive_purity '
            f'<= 1 (above one half, so that a patch is a positive of at most '
            f'one class); got {purity!r}')
    return float(purity)


def _quantised(purity: float) -> int:
    """The purity in millionths, strictly above one half."""
    return max(round(check_purity(purity) * _SCALE), _SCALE // 2 + 1)


def _vote(cand: torch.Tensor, votes: torch.Tensor,
          dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Merge majority votes along ``dim`` (which disappears).

    ``(cand, votes)`` says: the pixels so far can be split into ``votes``
    copies of ``cand`` and pairs of two different classes. Merging two
    such states keeps the invariant, whatever the order, so a class holding
    more than half of the pixels that vote is the surviving candidate (with
    ``votes > 0``). Pixels that do not vote have ``votes = 0``; a state
    with no votes leaves the other side of a merge unchanged.

    Args:
        cand (Tensor): int labels, any shape.
        votes (Tensor): int, the shape of ``cand``.
        dim (int): dimension to merge (non-negative).

    Returns:
        tuple[Tensor, Tensor]: ``cand`` and ``votes`` without ``dim``.
    """
    while cand.shape[dim] > 1:
        if cand.shape[dim] % 2:
            # an odd slot pairs with a state of no votes, which changes
            # nothing whatever its candidate
            shape = list(cand.shape)
            shape[dim] = 1
            cand = torch.cat([cand, cand.new_zeros(shape)], dim)
            votes = torch.cat([votes, votes.new_zeros(shape)], dim)
        pairs = cand.unflatten(dim, (-1, 2))
        first, second = pairs.select(dim + 1, 0), pairs.select(dim + 1, 1)
        pair_votes = votes.unflatten(dim, (-1, 2))
        votes_first = pair_votes.select(dim + 1, 0)
        votes_second = pair_votes.select(dim + 1, 1)
        same = first == second
        lead = votes_first - votes_second
        cand = torch.where(same | (lead >= 0), first, second)
        votes = torch.where(same, votes_first + votes_second, lead.abs())
    return cand.squeeze(dim), votes.squeeze(dim)


def _pool_votes(cand: torch.Tensor, votes: torch.Tensor,
                grid: Sequence[int], ratio: int
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, rows, cols) fine votes -> (B, h, w) votes of a stage whose blocks
    are ``ratio`` x ``ratio`` fine blocks (the cropping of ``_pool``)."""
    h, w = grid
    cand, votes = cand[:, :h * ratio, :w * ratio], votes[:, :h * ratio,
                                                         :w * ratio]
    if ratio > 1:
        cand = cand.reshape(cand.shape[0], h, ratio, w, ratio)
        votes = votes.reshape(votes.shape[0], h, ratio, w, ratio)
        cand, votes = _vote(cand, votes, 4)
        cand, votes = _vote(cand, votes, 2)
    return cand, votes


def stage_majority_labels(tables: StageLabels,
                          purity: float) -> List[torch.Tensor]:
    """The class each token of each stage is a positive of, under ``purity``.

    Args:
        tables (StageLabels): from :func:`.patch_labels.stage_labels` (its
            ``labels``, strides and grids are used; padding and cropping are
            those of the pure-patch path).
        purity (float): ``0.5 < purity <= 1`` (:func:`check_purity`), the
            share of the block's valid pixels the class must fill.

    Returns:
        list[Tensor]: per stage, long (B * h * w,) in the order
        ``b * h * w + row * w + col``: the class id in [0, K) of a positive
        token, K for a token that is a positive of no class.
    """
    num_classes = tables.num_classes
    quantised = _quantised(purity)
    labels = tables.labels
    majority: list = [None] * len(tables.strides)
    for stride, cells, members in _stage_groups(tables.strides,
                                                tables.grids):
        blocks = _fine_blocks(labels, stride, cells, num_classes)
        valid = (blocks < num_classes).int()
        fine_cand, fine_votes = _vote(*_vote(blocks, valid, 4), 2)
        fine_valid = valid.sum(4).sum(2)
        for stage, ratio in members:
            grid = tables.grids[stage]
            cand, _ = _pool_votes(fine_cand, fine_votes, grid, ratio)
            stage_valid = _pool(fine_valid, grid, ratio,
                                lambda t, d: t.sum(d))
            stage_blocks = _fine_blocks(labels, tables.strides[stage], grid,
                                        num_classes)
            count = (stage_blocks == cand[:, :, None, :, None]).sum(4).sum(2)
            stage_valid = stage_valid.long()
            count = count.reshape(-1).long()
            cand = cand.reshape(-1).long()
            # a candidate left with no votes may be K or a class without a
            # majority: only a class holding the share passes
            passes = ((stage_valid > 0) & (cand < num_classes)
                      & (count * _SCALE >= quantised * stage_valid))
            majority[stage] = torch.where(passes, cand,
                                          torch.full_like(cand, num_classes))
    return majority


def majority_positive_counts(majority: List[torch.Tensor],
                             num_classes: int) -> torch.Tensor:
    """How many tokens of each stage are positives of each class.

    Args:
        majority (list[Tensor]): per stage, long (N,) from
            :func:`stage_majority_labels` (K: no class).
        num_classes (int): K.

    Returns:
        Tensor: long (S, K).
    """
    rows = []
    for labels in majority:
        counts = torch.zeros(num_classes + 1, dtype=torch.long,
                             device=labels.device)
        counts.scatter_add_(0, labels, torch.ones_like(labels))
        rows.append(counts[:num_classes])
    return torch.stack(rows)


def majority_positive_masks(majority: List[torch.Tensor],
                            class_ids: torch.Tensor,
                            num_classes: int) -> List[torch.Tensor]:
    """Positive candidates of every stage for the classes ``class_ids``.

    Args:
        majority (list[Tensor]): per stage, long (N,) from
            :func:`stage_majority_labels` (K: no class).
        class_ids (Tensor): long (K',), distinct classes in [0, K), in any
            order (e.g. those present in the batch).
        num_classes (int): K.

    Returns:
        list[Tensor]: per stage, bool (K', N): row j marks the tokens whose
        majority label is ``class_ids[j]``.
    """
    lookup = _compact_lookup(class_ids, num_classes)
    rows = torch.arange(class_ids.numel(), device=class_ids.device)
    return [lookup.index_select(0, labels).unsqueeze(0) == rows.unsqueeze(1)
            for labels in majority]
