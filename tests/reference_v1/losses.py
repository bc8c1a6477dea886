# The reference implementation the fused paths are tested against: a copy of
# ct_mmseg/core/losses.py at commit 3afce7b, with every tensor sized by the
# dataset's class count K. Used only by tests/models/test_class_scaling.py.
# Do not edit.
"""Contrastive losses on mined patch pairs, per class (plain torch).

Both losses return one value per class (shape (K,)) plus a mask of the
classes that had enough samples to count. Inactive classes give exactly 0
through masking (never by dropping tensors), so the autograd graph always
reaches every embedding and no NaN can appear from empty means.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .mining import hard_infonce_triplets, hard_negative_pairs, hard_positive_pairs

CL_FORMS = ('soft_ce', 'bce')


class ClassLosses(NamedTuple):
    """Per-class loss of one stage.

    Attributes:
        loss (Tensor): float (K,), 0 where ``active`` is False.
        active (Tensor): bool (K,), the class had enough positives/negatives.
        pairs (Tensor): long (K,), number of pairs the loss used.
        positive_pairs (Tensor): long (K,), how many of them are same-class
            pairs (InfoNCE: query-key pairs).
        positive_cosine (Tensor): float (K,), detached mean cosine of the
            same-class pairs used (0 where none); for statistics only.
        negative_cosine (Tensor): float (K,), same for different-class pairs.
    """
    loss: torch.Tensor
    active: torch.Tensor
    pairs: torch.Tensor
    positive_pairs: torch.Tensor
    positive_cosine: torch.Tensor
    negative_cosine: torch.Tensor


def masked_mean(values: torch.Tensor, mask: torch.Tensor,
                dim: int = -1) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a graph) where none is."""
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def cl_pair_loss(cosine: torch.Tensor, same_class: bool,
                 label_smoothing: float = 0.1,
                 form: str = 'soft_ce') -> torch.Tensor:
    """The paper's "CL" term for each pair, elementwise.

    The cosine similarity is mapped to ``s = (cos + 1) / 2`` in [0, 1] and
    scored against the target (1 same class, 0 otherwise) smoothed by
    ``label_smoothing`` over the two outcomes (target probability
    ``1 - eps/2`` = 0.95 for eps = 0.1).

    * ``form='soft_ce'`` (default, the authors' code): a 2-way soft
      cross-entropy over the logits ``[1 - s, s]``. That is a binary
      cross-entropy on ``sigmoid(2s - 1) = sigmoid(cos)``; a term lies in
      [0.363, 1.263] and is log 2 = 0.693 at chance.
    * ``form='bce'`` (the paper's wording read literally): binary
      cross-entropy on ``s`` itself (clamped to [1e-6, 1 - 1e-6]).

    Args:
        cosine (Tensor): any shape, cosine similarities in [-1, 1].
        same_class (bool): target of every pair.
        label_smoothing (float): eps in [0, 1).
        form (str): 'soft_ce' or 'bce'.

    Returns:
        Tensor: the loss of each pair, same shape as ``cosine``.
    """
    target = (1.0 - label_smoothing / 2) if same_class else label_smoothing / 2
    if form == 'soft_ce':
        logit = cosine  # (s) - (1 - s) = 2s - 1 = cos
        return -(target * F.logsigmoid(logit) +
                 (1 - target) * F.logsigmoid(-logit))
    if form == 'bce':
        s = ((cosine + 1) / 2).clamp(1e-6, 1 - 1e-6)
        return -(target * torch.log(s) + (1 - target) * torch.log1p(-s))
    raise ValueError(f'cl_form must be one of {CL_FORMS}, got {form!r}')


def cl_class_losses(positives: torch.Tensor, num_positives: torch.Tensor,
                    negatives: torch.Tensor, num_negatives: torch.Tensor,
                    hard_fraction: float = 0.5, label_smoothing: float = 0.1,
                    min_positives: int = 5, min_negatives: int = 5,
                    min_positives_for_pairs: int = 10,
                    form: str = 'soft_ce') -> ClassLosses:
    """CL per class: hard anchor-negative pairs + hard positive pairs.

    Loss of class k = mean over kept negative pairs (target 0) + mean over
    kept positive pairs (target 1; 0 when the class has fewer than
    ``min_positives_for_pairs`` positives).

    Args:
        positives, negatives (Tensor): (K, M, D) L2-normalised embeddings,
            valid slots first.
        num_positives, num_negatives (Tensor): long (K,), valid slots.
        hard_fraction (float): fraction of pairs kept by hard mining.
        label_smoothing (float): see :func:`cl_pair_loss`.
        min_positives, min_negatives (int): a class with fewer is skipped.
        min_positives_for_pairs (int): positive pairs need this many positives.
        form (str): see :func:`cl_pair_loss`.

    Returns:
        ClassLosses
    """
    active = (num_positives >= min_positives) & (num_negatives >= min_negatives)
    num_neg_pairs = torch.minimum(num_positives, num_negatives)
    neg = hard_negative_pairs(positives, negatives, num_neg_pairs,
                              hard_fraction)
    pos = hard_positive_pairs(positives, num_positives, hard_fraction,
                              min_positives_for_pairs)
    neg_loss = masked_mean(
        cl_pair_loss(neg.similarity, False, label_smoothing, form), neg.keep)
    pos_loss = masked_mean(
        cl_pair_loss(pos.similarity, True, label_smoothing, form), pos.keep)
    pairs = neg.keep.sum(1) + pos.keep.sum(1)
    loss = torch.where(active, neg_loss + pos_loss, torch.zeros_like(neg_loss))
    with torch.no_grad():
        pos_keep = pos.keep & active.unsqueeze(1)
        neg_keep = neg.keep & active.unsqueeze(1)
        stats = (masked_mean(pos.similarity, pos_keep),
                 masked_mean(neg.similarity, neg_keep))
    return ClassLosses(loss, active, torch.where(active, pairs, 0 * pairs),
                       pos_keep.sum(1), *stats)


def infonce_class_losses(positives: torch.Tensor, num_positives: torch.Tensor,
                         negatives: torch.Tensor, num_negatives: torch.Tensor,
                         temperature: float = 0.1, hard_fraction: float = 0.5,
                         min_positives: int = 10,
                         min_negatives: int = 10) -> ClassLosses:
    """InfoNCE per class with the authors' hard positive-negative sampling.

    For class k: queries and positive keys come from the hardest kept
    positives (see :func:`hard_infonce_triplets`), every kept negative is a
    shared negative, logits are cosine similarities / ``temperature`` and the
    loss is the cross-entropy of picking the positive key, averaged over
    queries.

    Args:
        positives, negatives (Tensor): (K, M, D) L2-normalised embeddings.
        num_positives, num_negatives (Tensor): long (K,), valid slots.
        temperature (float): softmax temperature, > 0.
        hard_fraction (float): fraction of pairs kept by hard mining.
        min_positives, min_negatives (int): a class with fewer is skipped.

    Returns:
        ClassLosses
    """
    active = (num_positives >= min_positives) & (num_negatives >= min_negatives)
    num_pairs = torch.minimum(num_positives, num_negatives)
    queries, keys, query_valid, shared_neg, neg_valid = hard_infonce_triplets(
        positives, negatives, num_pairs, hard_fraction)
    positive_logit = (queries * keys).sum(-1, keepdim=True) / temperature
    negative_logits = torch.einsum('kqd,knd->kqn', queries,
                                   shared_neg) / temperature
    negative_logits = negative_logits.masked_fill(~neg_valid.unsqueeze(1),
                                                  float('-inf'))
    logits = torch.cat([positive_logit, negative_logits], dim=-1)
    per_query = -F.log_softmax(logits, dim=-1)[..., 0]
    query_valid = query_valid & active.unsqueeze(1)
    loss = masked_mean(per_query, query_valid)
    pairs = query_valid.sum(1) * (1 + neg_valid.sum(1))
    with torch.no_grad():
        pair_valid = query_valid.unsqueeze(2) & neg_valid.unsqueeze(1)
        stats = (masked_mean(positive_logit.squeeze(-1) * temperature,
                             query_valid),
                 masked_mean((negative_logits * temperature).masked_fill(
                     ~pair_valid, 0).flatten(1), pair_valid.flatten(1)))
    return ClassLosses(torch.where(active, loss, torch.zeros_like(loss)),
                       active, pairs, query_valid.sum(1), *stats)
