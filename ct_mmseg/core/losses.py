"""Contrastive losses on mined patch pairs, per class (plain torch).

Both losses return one value per class (shape (K,)) plus a mask of the
classes that had enough samples to count. Inactive classes give exactly 0
through masking (never by dropping tensors), so the autograd graph always
reaches every embedding and no NaN can appear from empty means.

Both losses optionally take :class:`MemoryPartners`, entries of a
cross-image memory (see :mod:`.memory`). Memory entries are only ever
partners of the batch's positives (the anchors), never paired with each
other, and they receive no gradient.
"""
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from .mining import (Pairs, _keep_first, aligned_pairs, half_split_pairs,
                     hard_infonce_triplets, hard_negative_pairs,
                     hard_positive_pairs, select_pairs)
from .reduction import masked_mean

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


class MemoryPartners(NamedTuple):
    """Memory entries partnering the batch's positives of each class.

    Attributes:
        positives (Tensor): (K, L, D) L2-normalised entries of class k from
            earlier iterations, valid rows first.
        num_positives (Tensor): long (K,), valid rows of ``positives``.
        negatives (Tensor): (K, W, D) L2-normalised entries of other classes,
            valid rows first.
        num_negatives (Tensor): long (K,), valid rows of ``negatives``.

    The losses detach them: the memory receives no gradient.
    """
    positives: torch.Tensor
    num_positives: torch.Tensor
    negatives: torch.Tensor
    num_negatives: torch.Tensor


def _memory_like(memory: MemoryPartners, positives: torch.Tensor
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                            torch.Tensor]:
    """``memory`` checked against the (K, M, D) batch positives, detached,
    in their dtype and on their device."""
    num_classes, _, dim = positives.shape
    checked = []
    for name, value, is_count in zip(
            ('positives', 'num_positives', 'negatives', 'num_negatives'),
            memory, (False, True, False, True)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f'memory.{name} must be a torch.Tensor, got '
                             f'{type(value).__name__}')
        shape = tuple(value.shape)
        if is_count:
            if shape != (num_classes,) or value.dtype.is_floating_point:
                raise ValueError(f'memory.{name} must be an integer tensor of '
                                 f'shape ({num_classes},), got {shape} '
                                 f'{value.dtype}')
            checked.append(value.to(positives.device, torch.long))
        else:
            if len(shape) != 3 or shape[0] != num_classes or shape[2] != dim:
                raise ValueError(f'memory.{name} must have shape '
                                 f'({num_classes}, *, {dim}) like the batch '
                                 f'positives, got {shape}')
            checked.append(value.detach().to(positives.device,
                                              positives.dtype))
    return tuple(checked)


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
                    form: str = 'soft_ce',
                    pair_selection: str = 'hardest',
                    memory: Optional[MemoryPartners] = None) -> ClassLosses:
    """CL per class: hard anchor-negative pairs + hard positive pairs.

    Loss of class k = mean over kept negative pairs (target 0) + mean over
    kept positive pairs (target 1; 0 when the class has none).

    Negative pairs: positive i with negative i, i < min(n_pos, n_neg).
    Positive pairs: the half split (positive i with positive i + n_pos // 2)
    when n_pos >= ``min_positives_for_pairs``. With ``memory``, each set
    also holds positive i with memory negative i, i < min(n_pos, n_memneg),
    resp. positive i with memory positive i, i < min(n_pos, n_mempos), and
    hard mining runs over each union. A class counts when n_pos >=
    ``min_positives`` and n_neg (+ n_memneg) >= ``min_negatives``.

    Args:
        positives, negatives (Tensor): (K, M, D) L2-normalised embeddings,
            valid slots first.
        num_positives, num_negatives (Tensor): long (K,), valid slots.
        hard_fraction (float): fraction of pairs kept by hard mining.
        label_smoothing (float): see :func:`cl_pair_loss`.
        min_positives, min_negatives (int): a class with fewer is skipped.
        min_positives_for_pairs (int): positive pairs need this many positives.
        form (str): see :func:`cl_pair_loss`.
        pair_selection (str): 'hardest' (the paper's text: the most similar
            negative pairs and the least similar positive pairs) or 'random'
            (the authors' code as shipped, whose sort runs over a size-1
            dimension and so keeps a random subset of the same size). Over
            a union with memory pairs, 'random' keeps the first valid pairs
            in slot order: the batch pairs, then the memory pairs.
        memory (MemoryPartners, optional): memory entries, K as the batch.

    Returns:
        ClassLosses
    """
    if memory is not None:
        return _cl_with_memory(
            positives, num_positives, negatives, num_negatives, memory,
            hard_fraction, label_smoothing, min_positives, min_negatives,
            min_positives_for_pairs, form, pair_selection)
    active = (num_positives >= min_positives) & (num_negatives >= min_negatives)
    num_neg_pairs = torch.minimum(num_positives, num_negatives)
    neg = hard_negative_pairs(positives, negatives, num_neg_pairs,
                              hard_fraction, pair_selection)
    pos = hard_positive_pairs(positives, num_positives, hard_fraction,
                              min_positives_for_pairs, pair_selection)
    return _cl_from_pairs(neg, pos, active, label_smoothing, form)


def _cl_with_memory(positives, num_positives, negatives, num_negatives,
                    memory, hard_fraction, label_smoothing, min_positives,
                    min_negatives, min_positives_for_pairs, form,
                    pair_selection) -> ClassLosses:
    """:func:`cl_class_losses` with memory partners (same arguments)."""
    mem_pos, mem_num_pos, mem_neg, mem_num_neg = _memory_like(memory,
                                                              positives)
    active = ((num_positives >= min_positives) &
              (num_negatives + mem_num_neg >= min_negatives))
    # negative pairs: (pos_i, neg_i) then (pos_i, memneg_i)
    batch_sim, batch_valid = aligned_pairs(
        positives, negatives, torch.minimum(num_positives, num_negatives))
    memory_sim, memory_valid = aligned_pairs(
        positives, mem_neg, torch.minimum(num_positives, mem_num_neg))
    neg = select_pairs(torch.cat([batch_sim, memory_sim], 1),
                       torch.cat([batch_valid, memory_valid], 1),
                       hard_fraction, pair_selection, most_similar=True)
    # positive pairs: the half split then (pos_i, mempos_i)
    split_sim, half = half_split_pairs(positives, num_positives,
                                       min_positives_for_pairs)
    memory_sim, memory_valid = aligned_pairs(
        positives, mem_pos, torch.minimum(num_positives, mem_num_pos))
    pos = select_pairs(
        torch.cat([split_sim, memory_sim], 1),
        torch.cat([_keep_first(half, split_sim.shape[1]), memory_valid], 1),
        hard_fraction, pair_selection, most_similar=False)
    return _cl_from_pairs(neg, pos, active, label_smoothing, form)


def _cl_from_pairs(neg: Pairs, pos: Pairs, active: torch.Tensor,
                   label_smoothing: float, form: str) -> ClassLosses:
    """The CL class losses of the kept negative and positive pairs."""
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


class _InfoNCEQueryLoss(torch.autograd.Function):
    """Per query ``logsumexp([q.k, q.n_1, ...]) - q.k``, one autograd node.

    Inputs: queries (K, Q, D) already divided by the temperature, their
    positive keys (K, Q, D), the shared negatives (K, P, D) and which of
    them are real (bool (K, P)). Output: float (K, Q).

    Built from autograd pieces (``einsum``, ``masked_fill``, ``logaddexp``,
    ``logsumexp``) the loss takes the (K, Q, P) exponentials twice and
    makes several (K, Q, P) copies (the masked fill's backward, the
    einsum's layouts). Here one (K, Q, P) buffer holds the logits, then in
    place their exponentials, which with the (K, Q) softmax denominators are
    the backward's answer: the loss's gradient for a negative logit is its
    probability, for the positive logit its probability - 1. Padding
    negatives get probability exactly 0 (``exp(-inf)``), so they receive no
    gradient and a class without a real negative gives a finite loss, never
    a NaN.
    """

    @staticmethod
    def forward(ctx, queries, keys, negatives, negative_valid):
        positive = (queries * keys).sum(-1)
        probs = torch.bmm(queries, negatives.transpose(1, 2))
        probs.masked_fill_(~negative_valid.unsqueeze(1), float('-inf'))
        top = positive.clone()
        if probs.shape[-1]:  # amax refuses an empty dimension
            top = torch.maximum(top, probs.amax(-1))
        # exponentials relative to the row maximum; the softmax denominator
        # stays a (K, Q) factor that backward applies to (K, Q, D) rows,
        # never to the (K, Q, P) buffer
        exps = probs.sub_(top.unsqueeze(-1)).exp_()
        positive_exp = (positive - top).exp_()
        total = exps.sum(-1).add_(positive_exp)
        ctx.save_for_backward(queries, keys, negatives, exps, positive_exp,
                              total)
        return torch.log(total).add_(top).sub_(positive)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        queries, keys, negatives, exps, positive_exp, total = \
            ctx.saved_tensors
        # d loss / d negative logit = exp / total, / d positive = that - 1
        scale = (grad / total).unsqueeze(-1)
        grad_positive = scale * positive_exp.unsqueeze(-1) - grad.unsqueeze(-1)
        grad_queries = torch.bmm(exps, negatives).mul_(scale).add_(
            grad_positive * keys)
        grad_negatives = torch.bmm(exps.transpose(1, 2), scale * queries)
        return grad_queries, grad_positive * queries, grad_negatives, None


def infonce_class_losses(positives: torch.Tensor, num_positives: torch.Tensor,
                         negatives: torch.Tensor, num_negatives: torch.Tensor,
                         temperature: float = 0.1, hard_fraction: float = 0.5,
                         min_positives: int = 10,
                         min_negatives: int = 10,
                         memory: Optional[MemoryPartners] = None
                         ) -> ClassLosses:
    """InfoNCE per class with the authors' hard positive-negative sampling.

    For class k: queries and positive keys come from the hardest kept
    positives (see :func:`hard_infonce_triplets`), every kept negative is a
    shared negative, logits are cosine similarities / ``temperature`` and the
    loss is the cross-entropy of picking the positive key, averaged over
    queries.

    With ``memory``, the shared negatives are the kept negatives and every
    valid memory negative of k, and besides the (query, key) terms there is
    a term (query i, memory positive i) for i < min(n_queries, n_mempos)
    with the same negatives; the class loss is the mean over all terms. A
    class counts when n_pos >= ``min_positives`` and n_neg (+ n_memneg) >=
    ``min_negatives``. Queries come from positive-negative pairs of the
    batch, so a class without batch negatives has no term (loss 0).

    Args:
        positives, negatives (Tensor): (K, M, D) L2-normalised embeddings.
        num_positives, num_negatives (Tensor): long (K,), valid slots.
        temperature (float): softmax temperature, > 0.
        hard_fraction (float): fraction of pairs kept by hard mining.
        min_positives, min_negatives (int): a class with fewer is skipped.
        memory (MemoryPartners, optional): memory entries, K as the batch.

    Returns:
        ClassLosses
    """
    if memory is not None:
        return _infonce_with_memory(
            positives, num_positives, negatives, num_negatives, memory,
            temperature, hard_fraction, min_positives, min_negatives)
    active = (num_positives >= min_positives) & (num_negatives >= min_negatives)
    num_pairs = torch.minimum(num_positives, num_negatives)
    triplets = hard_infonce_triplets(positives, negatives, num_pairs,
                                     hard_fraction)
    query_valid = triplets.query_valid & active.unsqueeze(1)
    return _infonce_from_terms(triplets.queries, triplets.keys, query_valid,
                               triplets.negatives, triplets.negative_valid,
                               active, temperature)


def _infonce_with_memory(positives, num_positives, negatives, num_negatives,
                         memory, temperature, hard_fraction, min_positives,
                         min_negatives) -> ClassLosses:
    """:func:`infonce_class_losses` with memory partners (same arguments)."""
    mem_pos, mem_num_pos, mem_neg, mem_num_neg = _memory_like(memory,
                                                              positives)
    active = ((num_positives >= min_positives) &
              (num_negatives + mem_num_neg >= min_negatives))
    num_pairs = torch.minimum(num_positives, num_negatives)
    triplets = hard_infonce_triplets(positives, negatives, num_pairs,
                                     hard_fraction)
    # extra terms (query_i, mempos_i): at most min(Q, L) can be valid
    extra = min(triplets.queries.shape[1], mem_pos.shape[1])
    num_extra = torch.minimum(triplets.query_valid.sum(1), mem_num_pos)
    queries = torch.cat([triplets.queries, triplets.queries[:, :extra]], 1)
    keys = torch.cat([triplets.keys, mem_pos[:, :extra]], 1)
    query_valid = torch.cat([triplets.query_valid,
                             _keep_first(num_extra, extra)], 1)
    negs = torch.cat([triplets.negatives, mem_neg], 1)
    neg_valid = torch.cat([triplets.negative_valid,
                           _keep_first(mem_num_neg, mem_neg.shape[1])], 1)
    return _infonce_from_terms(queries, keys,
                               query_valid & active.unsqueeze(1), negs,
                               neg_valid, active, temperature)


def _infonce_from_terms(queries: torch.Tensor, keys: torch.Tensor,
                        query_valid: torch.Tensor, negatives: torch.Tensor,
                        neg_valid: torch.Tensor, active: torch.Tensor,
                        temperature: float) -> ClassLosses:
    """The InfoNCE class losses of (K, Q, D) query-key terms (``query_valid``
    already masked by ``active``) sharing (K, P, D) negatives."""
    # Scale the (K, Q, D) queries rather than the (K, Q, P) logits: one
    # (K, Q, P) tensor is all the loss keeps for backward.
    scaled = queries / temperature
    # -log softmax([pos, neg...])[0] = logsumexp([pos, neg...]) - pos
    per_query = _InfoNCEQueryLoss.apply(scaled, keys, negatives, neg_valid)
    loss = masked_mean(per_query, query_valid)
    pairs = query_valid.sum(1) * (1 + neg_valid.sum(1))
    with torch.no_grad():
        # mean cosine over valid (query, negative) pairs without a (K, Q, P)
        # temporary: the mean of q.n over pairs is (sum q).(sum n) / (|q||n|)
        pair_count = (query_valid.sum(1) * neg_valid.sum(1)).clamp(min=1)
        query_sum = (queries * query_valid.unsqueeze(-1)).sum(1)
        negative_sum = (negatives * neg_valid.unsqueeze(-1)).sum(1)
        positive_cosine = (queries * keys).sum(-1)
        stats = (masked_mean(positive_cosine, query_valid),
                 (query_sum * negative_sum).sum(-1) / pair_count)
    return ClassLosses(torch.where(active, loss, torch.zeros_like(loss)),
                       active, pairs, query_valid.sum(1), *stats)
