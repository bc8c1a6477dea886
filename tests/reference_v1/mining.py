# The reference implementation the fused paths are tested against: a copy of
# ct_mmseg/core/mining.py at commit 3afce7b, with every tensor sized by the
# dataset's class count K. Used only by tests/models/test_class_scaling.py.
# Do not edit.
"""Pair mining: random candidate sampling and hard positive / negative pairs.

All functions work on every class at once: tensors carry a leading class axis
``K`` and a fixed sample axis ``M`` (the per-class bound), with boolean masks
marking which slots are real. Shapes never depend on the data, so there is no
host-device synchronisation and memory stays flat whatever the image size.
"""
from typing import NamedTuple, Optional

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


def _keep_first(count: torch.Tensor, width: int) -> torch.Tensor:
    """bool (K, width): slot j < count[k]."""
    slots = torch.arange(width, device=count.device)
    return slots.unsqueeze(0) < count.unsqueeze(1)


def kept_count(count: torch.Tensor, fraction: float) -> torch.Tensor:
    """How many of ``count`` pairs a keep-``fraction`` rule keeps (>= 1 if any)."""
    kept = torch.floor(count.float() * fraction).long()
    return torch.where(count > 0, kept.clamp(min=1), kept)


def hard_negative_pairs(anchors: torch.Tensor, negatives: torch.Tensor,
                        num_pairs: torch.Tensor,
                        hard_fraction: float = 0.5) -> Pairs:
    """Pair anchor i with negative i and keep the most similar pairs.

    Args:
        anchors (Tensor): (K, M, D) L2-normalised positive embeddings.
        negatives (Tensor): (K, M, D) L2-normalised negative embeddings.
        num_pairs (Tensor): long (K,), number of real pairs (slots < n).
        hard_fraction (float): fraction of pairs kept, the most similar first.

    Returns:
        Pairs: similarity sorted descending, keep marks the hardest pairs.
    """
    similarity = (anchors * negatives).sum(dim=-1)
    valid = _keep_first(num_pairs, similarity.shape[1])
    similarity = similarity.masked_fill(~valid, float('-inf'))
    similarity, _ = similarity.sort(dim=1, descending=True)
    keep = _keep_first(kept_count(num_pairs, hard_fraction),
                       similarity.shape[1])
    return Pairs(similarity.masked_fill(~keep, 0.0), keep)


def hard_positive_pairs(positives: torch.Tensor, num_positives: torch.Tensor,
                        hard_fraction: float = 0.5,
                        min_positives: int = 10) -> Pairs:
    """Split the positives in two halves, pair them, keep the least similar.

    Positive i of the first half is paired with positive ``i + n // 2``.

    Args:
        positives (Tensor): (K, M, D) L2-normalised positive embeddings,
            valid slots first (as given by :func:`sample_candidates`).
        num_positives (Tensor): long (K,), valid positives per class.
        hard_fraction (float): fraction of pairs kept, the least similar first.
        min_positives (int): classes with fewer positives get no pairs.

    Returns:
        Pairs: similarity sorted ascending, keep marks the hardest pairs.
    """
    width = positives.shape[1]
    half = torch.where(num_positives >= min_positives, num_positives // 2,
                       torch.zeros_like(num_positives))
    partner = torch.arange(width, device=positives.device).unsqueeze(0)
    partner = (partner + half.unsqueeze(1)).clamp(max=max(width - 1, 0))
    partners = positives.gather(
        1, partner.unsqueeze(-1).expand(-1, -1, positives.shape[-1]))
    similarity = (positives * partners).sum(dim=-1)
    valid = _keep_first(half, width)
    similarity = similarity.masked_fill(~valid, float('inf'))
    similarity, _ = similarity.sort(dim=1)
    keep = _keep_first(kept_count(half, hard_fraction), width)
    return Pairs(similarity.masked_fill(~keep, 0.0), keep)


def hard_infonce_triplets(positives: torch.Tensor, negatives: torch.Tensor,
                          num_pairs: torch.Tensor, hard_fraction: float = 0.5):
    """The authors' InfoNCE sampling: hardest positive-negative pairs.

    Pair positive i with negative i for i < num_pairs, sort the pairs by their
    cosine similarity (descending), keep the top ``hard_fraction``. The kept
    positives are split into queries (first half) and positive keys (second
    half); every kept negative is a shared negative for all queries.

    Args:
        positives, negatives (Tensor): (K, M, D) L2-normalised embeddings.
        num_pairs (Tensor): long (K,), real pairs per class.
        hard_fraction (float): fraction of pairs kept.

    Returns:
        tuple: queries (K, M, D), keys (K, M, D), query_valid (K, M) bool,
        shared negatives (K, M, D), negative_valid (K, M) bool.
    """
    k, width, dim = positives.shape
    similarity = (positives * negatives).sum(dim=-1)
    valid = _keep_first(num_pairs, width)
    similarity = similarity.masked_fill(~valid, float('-inf'))
    order = similarity.argsort(dim=1, descending=True)
    expand = order.unsqueeze(-1).expand(-1, -1, dim)
    kept_pos = positives.gather(1, expand)
    kept_neg = negatives.gather(1, expand)
    kept = torch.where(num_pairs > 0,
                       torch.floor(num_pairs.float() * hard_fraction).long(),
                       torch.zeros_like(num_pairs))
    num_queries = kept // 2
    partner = torch.arange(width, device=positives.device).unsqueeze(0)
    partner = (partner + num_queries.unsqueeze(1)).clamp(max=max(width - 1, 0))
    keys = kept_pos.gather(1, partner.unsqueeze(-1).expand(-1, -1, dim))
    return (kept_pos, keys, _keep_first(num_queries, width), kept_neg,
            _keep_first(kept, width))
