"""How CT's per-pair losses become the loss that is optimised (plain torch).

The one owner of CT's reduction, from pairs to the logged stage losses:

1. pairs -> class: the mean over the pairs a class kept
   (:func:`masked_mean`, used by the losses in :mod:`.losses`);
2. classes -> stage: ``w_s * sum_k L_{s,k} / (S * K_present)``, the
   authors' aggregation (:func:`stage_loss`);
3. stages -> total: the paper's clip of the total at ``clip_value``, by
   scaling or by the authors' hard clamp, each stage keeping its share
   (:func:`clip_stage_losses`), then the loss weight (ramped over a
   warm-up by :class:`~ct_mmseg.models.PatchContrastLoss`).
"""
from typing import List, Optional, Tuple

import torch

CLIP_MODES = ('scale', 'clamp')


def masked_mean(values: torch.Tensor, mask: torch.Tensor,
                dim: int = -1) -> torch.Tensor:
    """Mean of ``values`` where ``mask``; 0 (with a graph) where none is.

    Args:
        values (Tensor): float (..., N, ...).
        mask (Tensor): bool, broadcastable to ``values``.
        dim (int): the dimension averaged over.

    Returns:
        Tensor: ``values`` reduced over ``dim``.
    """
    mask = mask.to(values.dtype)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def stage_loss(class_losses: torch.Tensor, stage_weight: float,
               num_stages: int, num_present: int) -> torch.Tensor:
    """``w_s * sum_k L_{s,k} / (S * K_present)`` of one stage.

    Args:
        class_losses (Tensor): float (K',), the stage's loss per class drawn
            (0 for a class skipped there).
        stage_weight (float): w_s.
        num_stages (int): S, the stages CT uses.
        num_present (int): K_present, the classes present in the batch GT
            (at least 1 is used, so an empty batch gives 0, not NaN).

    Returns:
        Tensor: scalar.
    """
    divisor = float(num_stages * max(num_present, 1))
    return stage_weight * class_losses.sum() / divisor


def clip_stage_losses(stage_losses: List[torch.Tensor],
                      clip_value: Optional[float], clip_mode: str = 'scale'
                      ) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
    """Bound the total of the stage losses by ``clip_value``.

    Each stage keeps its share of the total, so the logged stage losses
    still add up to the clipped loss.

    Args:
        stage_losses (list[Tensor]): S scalars.
        clip_value (float, optional): the bound; None: no clip.
        clip_mode (str): 'scale' rescales the total down to the bound and
            keeps a gradient, ``clip_value / total`` times the unclipped one;
            'clamp' (the authors' code) makes the loss the constant bound
            above it, with exactly zero gradient.

    Returns:
        tuple: the S clipped scalars, and a bool scalar telling whether the
        total was above the bound (None without a clip).
    """
    if clip_mode not in CLIP_MODES:
        raise ValueError(f'clip_mode must be one of {CLIP_MODES}, got '
                         f'{clip_mode!r}')
    if clip_value is None:
        return list(stage_losses), None
    total = torch.stack(stage_losses).sum().detach()
    over = total > clip_value
    scale = clip_value / total.clamp(min=1e-12)
    clipped = []
    for loss in stage_losses:
        if clip_mode == 'scale':
            loss = loss * torch.where(over, scale, torch.ones_like(scale))
        else:  # clamp: constant value above the clip, zero gradient
            loss = torch.where(over, loss * 0 + loss.detach() * scale, loss)
        clipped.append(loss)
    return clipped, over
