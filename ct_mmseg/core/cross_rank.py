"""Collectives of cross-rank contrast: every rank contrasts the whole batch.

Under data parallelism each rank holds B of the R * B images of a step. With
cross-rank contrast every rank

1. agrees on the step's shapes: the per-class positive counts, the classes
   present and the batch sizes are summed over ranks (:func:`sum_over_ranks`,
   one all-reduce of a (S + 2, K) tensor);
2. draws from its own images by image-tied keys
   (:mod:`~ct_mmseg.core.image_keys`) and projects what it drew;
3. gathers every rank's draws (:func:`gather_with_local_gradient`) and keeps
   the largest keys (:func:`~ct_mmseg.core.image_keys.merge_draws`).

Every rank then computes the same loss, the one a single process computes on
the whole batch. The gathered copies of other ranks' embeddings carry no
gradient; the local ones carry R times theirs, so that the gradient data
parallelism averages over ranks is the single-process gradient.
"""
from typing import Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .image_keys import merge_draws
from .mining import take_rows


def world() -> Tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def sum_over_ranks(values: Tensor) -> Tensor:
    """``values`` summed over the ranks (itself with one process).

    Args:
        values (Tensor): any shape; not modified.

    Returns:
        Tensor: same shape and dtype.
    """
    _, size = world()
    if size == 1:
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def with_scaled_gradient(values: Tensor, scale: float) -> Tensor:
    """``values`` unchanged, its gradient multiplied by ``scale``."""
    if scale == 1 or not values.requires_grad:
        return values
    return values + (scale - 1) * (values - values.detach())


def gather_with_local_gradient(values: Tensor) -> Tensor:
    """Stack every rank's ``values``; gradient only to the local copy.

    Args:
        values (Tensor): (...), the same shape on every rank.

    Returns:
        Tensor: (R, ...), slot r holding rank r's values. The local slot
        is ``values`` with its gradient scaled by R (see the module
        docstring); the others are detached.
    """
    rank, size = world()
    if size == 1:
        return values.unsqueeze(0)
    parts = [torch.empty_like(values) for _ in range(size)]
    dist.all_gather(parts, values.detach().contiguous())
    parts[rank] = with_scaled_gradient(values, float(size))
    return torch.stack(parts)


def batch_offset(batch_size: int, total: int) -> int:
    """Index in the global batch of this rank's first image.

    Args:
        batch_size (int): this rank's images.
        total (int): the images of all ranks (from :func:`sum_over_ranks`).

    Returns:
        int: ``rank * batch_size``.

    Raises:
        ValueError: when the ranks hold different batch sizes (the global
            image index would then depend on the split).
    """
    rank, size = world()
    if total != size * batch_size:
        raise ValueError(
            'ContrastiveTransformerHead: cross_rank=True needs the same '
            f'batch size on every rank; this rank has {batch_size} of '
            f'{total} images over {size} ranks')
    return rank * batch_size


def gather_draws(embeddings: Tensor, keys: Tensor, width: int
                 ) -> Tuple[Tensor, Tensor]:
    """Every rank's keyed draws of one kind, merged into one draw.

    Args:
        embeddings (Tensor): (K', W', D), this rank's drawn embeddings
            (W' <= ``width``; slots past the valid ones are ignored).
        keys (Tensor): float64 (K', W'), their keys, -1 for invalid slots.
        width (int): W, how many to keep per class.

    Returns:
        tuple: embeddings (K', W, D) (at most R * W' wide), valid first,
        and long (K',) valid counts; the same on every rank.
    """
    _, size = world()
    pad = width - keys.shape[1]
    if pad > 0:  # ranks may see grids of other sizes: one width for all
        keys = F.pad(keys, (0, pad), value=-1.0)
        embeddings = F.pad(embeddings, (0, 0, 0, pad))
    num_classes, slots, dim = embeddings.shape
    all_keys = gather_with_local_gradient(keys)
    all_embeddings = gather_with_local_gradient(embeddings)
    # (R, K', W) -> (K', R * W): rank r's slots at r * W + j
    all_keys = all_keys.permute(1, 0, 2).reshape(num_classes, size * slots)
    all_embeddings = all_embeddings.permute(1, 0, 2, 3).reshape(
        num_classes, size * slots, dim)
    merged = merge_draws(all_keys, width)
    return take_rows(all_embeddings, merged.index), merged.count
