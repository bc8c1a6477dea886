"""Pair mining: random candidate sampling and hard positive / negative pairs.

All functions work on every class at once: tensors carry a leading class axis
``K`` and a fixed sample axis ``M`` (the per-class bound), with boolean masks
marking which slots are real. Shapes never depend on the data, so there is no
host-device synchronisation and memory stays flat whatever the image size.
"""
from typing import NamedTuple, Optional, Tuple

import torch


class Candidates(NamedTuple):
    """Randomly drawn candidate tokens for every class.

    Attributes:
        index (Tensor): long (K, M), token indices; valid slots come first.
        valid (Tensor): bool (K, M), slot m holds a real candidate.
        count (Tensor): long (K,), number of valid slots (``valid.sum(1)``).
    """
    index: torch.Tensor
    valid: torch.Tensor
    count: torch.Tensor


class Pairs(NamedTuple):
    """Pairs kept after hard mining.

    Attributes:
        similarity (Tensor): float (K, P), cosine similarity of each pair.
        keep (Tensor): bool (K, P), the pair is kept.
    """
    similarity: torch.Tensor
    keep: torch.Tensor


def sample_candidates(eligible: torch.Tensor, num_samples: int,
                      generator: Optional[torch.Generator] = None
                      ) -> Candidates:
    """Draw up to ``num_samples`` eligible tokens per class, uniformly.

    Uniform sampling without replacement is done by giving every token a
    random key and taking the ``num_samples`` largest keys among the eligible
    ones (ineligible tokens get key -1 and sort last).

    Args:
        eligible (Tensor): bool (K, N).
        num_samples (int): M, the per-class bound.
        generator (torch.Generator, optional): for reproducible draws; it must
            live on ``eligible.device``.

    Returns:
        Candidates: with M = min(num_samples, N).
    """
    num_classes, num_tokens = eligible.shape
    m = max(0, min(int(num_samples), num_tokens))
    keys = torch.rand(eligible.shape, generator=generator,
                      device=eligible.device)
    keys = keys.masked_fill(~eligible, -1.0)
    top_keys, index = keys.topk(m, dim=1)
    valid = top_keys >= 0
    return Candidates(index, valid, valid.sum(dim=1))


def take_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values.gather(1, index[..., None].expand(..., D))`` for (K, M, D)
    values and long (K, R) index: (K, R, D), row ``index[k, r]`` of class k.

    As one ``index_select`` of whole rows of the flattened (K * M, D)
    tensor, whose backward is an ``index_add_`` of rows: several times
    faster on the CPU than ``gather`` / ``scatter_add_`` with an index
    expanded over D, and no (K, R, D) index tensor.
    """
    num_classes, width, dim = values.shape
    offsets = torch.arange(num_classes, device=index.device) * width
    flat = (index + offsets.unsqueeze(1)).flatten()
    return values.reshape(-1, dim).index_select(0, flat).view(
        num_classes, index.shape[1], dim)


def _keep_first(count: torch.Tensor, width: int) -> torch.Tensor:
    """bool (K, width): slot j < count[k]."""
    slots = torch.arange(width, device=count.device)
    return slots.unsqueeze(0) < count.unsqueeze(1)


def kept_count(count: torch.Tensor, fraction: float) -> torch.Tensor:
    """How many of ``count`` pairs a keep-``fraction`` rule keeps (>= 1 if any)."""
    kept = torch.floor(count.float() * fraction).long()
    return torch.where(count > 0, kept.clamp(min=1), kept)


PAIR_SELECTIONS = ('hardest', 'random')


def _check_selection(selection: str) -> None:
    if selection not in PAIR_SELECTIONS:
        raise ValueError(f'pair_selection must be one of {PAIR_SELECTIONS}, '
                         f'got {selection!r}')


def hard_negative_pairs(anchors: torch.Tensor, negatives: torch.Tensor,
                        num_pairs: torch.Tensor,
                        hard_fraction: float = 0.5,
                        selection: str = 'hardest') -> Pairs:
    """Pair anchor i with negative i and keep a fraction of the pairs.

    Args:
        anchors (Tensor): (K, M, D) L2-normalised positive embeddings.
        negatives (Tensor): (K, M, D) L2-normalised negative embeddings.
        num_pairs (Tensor): long (K,), number of real pairs (slots < n).
        hard_fraction (float): fraction of pairs kept.
        selection (str): ``'hardest'`` (the paper: the most similar pairs,
            sorted descending) or ``'random'`` (the authors' code as shipped:
            their sort runs over a size-1 dimension, so the first pairs of
            the random draw are kept, in draw order).

    Returns:
        Pairs: (K, M); keep marks the kept pairs, which come first.
    """
    _check_selection(selection)
    similarity = (anchors * negatives).sum(dim=-1)
    if selection == 'hardest':
        valid = _keep_first(num_pairs, similarity.shape[1])
        similarity = similarity.masked_fill(~valid, float('-inf'))
        similarity, _ = similarity.sort(dim=1, descending=True)
    keep = _keep_first(kept_count(num_pairs, hard_fraction),
                       similarity.shape[1])
    return Pairs(similarity.masked_fill(~keep, 0.0), keep)


def half_split_pairs(positives: torch.Tensor, num_positives: torch.Tensor,
                     min_positives: int = 10
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cosine of each positive pair of the half split, before mining.

    Positive i of the first half is paired with positive ``i + n // 2``, for
    i < n // 2 (no pair when n < ``min_positives``).

    Args:
        positives (Tensor): (K, M, D) L2-normalised, valid slots first.
        num_positives (Tensor): long (K,), valid positives per class.
        min_positives (int): classes with fewer positives get no pairs.

    Returns:
        tuple: float (K, M // 2), the cosine of each pair slot, and long
        (K,), the number of real pairs (slots < it are real).
    """
    width = positives.shape[1] // 2
    half = torch.where(num_positives >= min_positives, num_positives // 2,
                       torch.zeros_like(num_positives))
    partner = torch.arange(width, device=positives.device).unsqueeze(0)
    # i + half < 2 * half <= M for every valid pair; the clamp only guards
    # the (masked) invalid slots
    partner = (partner + half.unsqueeze(1)).clamp(
        max=max(positives.shape[1] - 1, 0))
    partners = take_rows(positives, partner)
    return (positives[:, :width] * partners).sum(dim=-1), half


def aligned_pairs(anchors: torch.Tensor, partners: torch.Tensor,
                  num_pairs: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cosine of anchor i with partner i, for the i that can be real.

    Args:
        anchors (Tensor): (K, M, D) L2-normalised, valid slots first.
        partners (Tensor): (K, W, D) L2-normalised, valid slots first.
        num_pairs (Tensor): long (K,), real pairs per class (<= min(M, W)).

    Returns:
        tuple: float (K, min(M, W)), the cosines, and bool (K, min(M, W)),
        slot i < ``num_pairs``.
    """
    width = min(anchors.shape[1], partners.shape[1])
    similarity = (anchors[:, :width] * partners[:, :width]).sum(dim=-1)
    return similarity, _keep_first(num_pairs, width)


def select_pairs(similarity: torch.Tensor, valid: torch.Tensor,
                 hard_fraction: float = 0.5, selection: str = 'hardest',
                 most_similar: bool = True) -> Pairs:
    """Keep ``kept_count(valid.sum(1), hard_fraction)`` of the valid pairs.

    The valid pairs need not be a prefix (a union of pair sets is
    several prefixes side by side).

    Args:
        similarity (Tensor): float (K, P), cosine of each pair slot.
        valid (Tensor): bool (K, P), the slot holds a real pair.
        hard_fraction (float): fraction of the valid pairs kept.
        selection (str): ``'hardest'``: the most similar pairs
            (``most_similar=True``, for negative pairs) or the least similar
            (``most_similar=False``, for positive pairs), sorted so that the
            kept pairs come first; ``'random'``: the first valid pairs in
            slot order, in place (``keep = valid & cumsum(valid) <= kept``).
        most_similar (bool): see ``selection``.

    Returns:
        Pairs: (K, P); keep marks the kept pairs.
    """
    _check_selection(selection)
    kept = kept_count(valid.sum(dim=1), hard_fraction)
    if selection == 'hardest':
        padding = float('-inf') if most_similar else float('inf')
        similarity = similarity.masked_fill(~valid, padding)
        similarity, _ = similarity.sort(dim=1, descending=most_similar)
        keep = _keep_first(kept, similarity.shape[1])
    else:
        keep = valid & (valid.long().cumsum(dim=1) <= kept.unsqueeze(1))
    return Pairs(similarity.masked_fill(~keep, 0.0), keep)


def hard_positive_pairs(positives: torch.Tensor, num_positives: torch.Tensor,
                        hard_fraction: float = 0.5,
                        min_positives: int = 10,
                        selection: str = 'hardest') -> Pairs:
    """Split the positives in two halves, pair them, keep a fraction.

    Positive i of the first half is paired with positive ``i + n // 2``.
    At most ``M // 2`` pairs can exist, so the pair axis is ``M // 2`` wide.

    Args:
        positives (Tensor): (K, M, D) L2-normalised positive embeddings,
            valid slots first (as given by :func:`sample_candidates`).
        num_positives (Tensor): long (K,), valid positives per class.
        hard_fraction (float): fraction of pairs kept.
        min_positives (int): classes with fewer positives get no pairs.
        selection (str): ``'hardest'`` (the least similar pairs first) or
            ``'random'`` (the first pairs of the draw; authors' code).

    Returns:
        Pairs: (K, M // 2); keep marks the kept pairs, which come first.
    """
    _check_selection(selection)
    similarity, half = half_split_pairs(positives, num_positives,
                                        min_positives)
    width = similarity.shape[1]
    if selection == 'hardest':
        valid = _keep_first(half, width)
        similarity = similarity.masked_fill(~valid, float('inf'))
        similarity, _ = similarity.sort(dim=1)
    keep = _keep_first(kept_count(half, hard_fraction), width)
    return Pairs(similarity.masked_fill(~keep, 0.0), keep)


def infonce_kept_width(width: int, hard_fraction: float) -> int:
    """Most pairs :func:`hard_infonce_triplets` can keep out of ``width``.

    Computed exactly as the per-class count (float32 floor), which is
    monotone in the count, so no class can keep more.
    """
    return int(torch.floor(torch.tensor(float(width)) * hard_fraction))


class InfoNCETriplets(NamedTuple):
    """Queries, positive keys and shared negatives of every class.

    Attributes:
        queries (Tensor): (K, Q, D), Q = P // 2.
        keys (Tensor): (K, Q, D), the positive key of each query.
        query_valid (Tensor): bool (K, Q).
        negatives (Tensor): (K, P, D), P = ``infonce_kept_width(M)``.
        negative_valid (Tensor): bool (K, P).
    """
    queries: torch.Tensor
    keys: torch.Tensor
    query_valid: torch.Tensor
    negatives: torch.Tensor
    negative_valid: torch.Tensor


def hard_infonce_triplets(positives: torch.Tensor, negatives: torch.Tensor,
                          num_pairs: torch.Tensor,
                          hard_fraction: float = 0.5) -> InfoNCETriplets:
    """The authors' InfoNCE sampling: hardest positive-negative pairs.

    Pair positive i with negative i for i < num_pairs, sort the pairs by their
    cosine similarity (descending), keep the top ``hard_fraction``. The kept
    positives are split into queries (first half) and positive keys (second
    half); every kept negative is a shared negative for all queries.

    Only what can be valid is materialised: at most P = floor(M * fraction)
    pairs are kept and Q = P // 2 of them are queries, so the logits of a
    class are (Q, P), a quarter of M x M at the default fraction 0.5 (an
    eighth of the work of scoring every slot against every slot).

    Args:
        positives, negatives (Tensor): (K, M, D) L2-normalised embeddings.
        num_pairs (Tensor): long (K,), real pairs per class.
        hard_fraction (float): fraction of pairs kept.

    Returns:
        InfoNCETriplets
    """
    width = positives.shape[1]
    kept_width = infonce_kept_width(width, hard_fraction)
    similarity = (positives * negatives).sum(dim=-1)
    valid = _keep_first(num_pairs, width)
    similarity = similarity.masked_fill(~valid, float('-inf'))
    order = similarity.argsort(dim=1, descending=True)[:, :kept_width]
    kept = torch.where(num_pairs > 0,
                       torch.floor(num_pairs.float() * hard_fraction).long(),
                       torch.zeros_like(num_pairs))
    num_queries = kept // 2
    query_width = kept_width // 2
    partner = torch.arange(query_width, device=positives.device).unsqueeze(0)
    partner = (partner + num_queries.unsqueeze(1)).clamp(
        max=max(kept_width - 1, 0))
    # queries and keys straight from the positives (no kept-positives copy)
    return InfoNCETriplets(take_rows(positives, order[:, :query_width]),
                           take_rows(positives, order.gather(1, partner)),
                           _keep_first(num_queries, query_width),
                           take_rows(negatives, order),
                           _keep_first(kept, kept_width))
