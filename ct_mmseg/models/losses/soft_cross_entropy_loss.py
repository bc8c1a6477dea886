"""SoftCrossEntropyLoss: pixel-wise cross-entropy with label smoothing.

The paper's segmentation loss is "soft cross-entropy + dice" (section 4.1);
the authors' code (a GeoSeg fork) uses GeoSeg's ``SoftCrossEntropyLoss`` with
``smooth_factor=0.05``. MMSeg's ``CrossEntropyLoss`` has no label smoothing,
hence this loss.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.models.losses.utils import weight_reduce_loss
from mmseg.registry import MODELS
from torch import Tensor

from .base import SegLoss


def soft_cross_entropy(pred: Tensor,
                       label: Tensor,
                       smooth_factor: float = 0.05,
                       ignore_index: Optional[int] = 255) -> Tensor:
    """Label-smoothed cross-entropy of every pixel (no reduction).

    With K classes, p = softmax(pred) and y the label of a pixel::

        loss = (1 - eps) * (-log p_y) + eps / K * sum_k (-log p_k)

    i.e. the cross-entropy against the target ``(1 - eps) * onehot(y) +
    eps / K``. This is GeoSeg's ``label_smoothed_nll_loss`` (from
    pytorch-toolbelt) and equals ``F.cross_entropy(..., label_smoothing=eps)``
    pixel by pixel. Pixels labelled ``ignore_index`` get a loss of 0.

    Args:
        pred (Tensor): logits, (N, K, H, W) (or (N, K)).
        label (Tensor): class indices, (N, H, W) (or (N,)), int64.
        smooth_factor (float): eps in [0, 1). 0 gives plain cross-entropy.
        ignore_index (int, optional): label value to ignore.

    Returns:
        Tensor: (N, H, W) per-pixel losses (0 at ignored pixels).
    """
    if pred.dtype in (torch.float16, torch.bfloat16):
        pred = pred.float()  # AMP: the log-probabilities in float32
    log_prob = F.log_softmax(pred, dim=1)  # (N, K, H, W)
    num_classes = pred.shape[1]
    if ignore_index is not None:
        valid = label != ignore_index  # (N, H, W)
        safe = torch.where(valid, label, torch.zeros_like(label))
    else:
        valid, safe = None, label
    nll = -log_prob.gather(1, safe.unsqueeze(1)).squeeze(1)  # (N, H, W)
    smooth = -log_prob.sum(dim=1)  # (N, H, W): sum over the K classes
    loss = (1.0 - smooth_factor) * nll + smooth_factor / num_classes * smooth
    if valid is not None:
        loss = loss * valid.to(loss.dtype)
    return loss


@MODELS.register_module()
class SoftCrossEntropyLoss(SegLoss):
    """Cross-entropy with label smoothing (GeoSeg's SoftCrossEntropyLoss).

    Use it as an MMSeg ``loss_decode``, e.g. the paper's joint loss::

        loss_decode=[
            dict(type='SoftCrossEntropyLoss', smooth_factor=0.05),
            dict(type='SoftDiceLoss', smooth=0.05)]

    Reduction: by default the per-pixel losses are averaged over ALL pixels,
    ignored ones counting as 0. That is what GeoSeg (pytorch-toolbelt's
    ``label_smoothed_nll_loss`` takes ``.mean()`` after zeroing ignored
    pixels) and MMSeg's ``CrossEntropyLoss`` (``avg_non_ignore=False``) do;
    ``avg_non_ignore=True`` averages over the labelled pixels only (PyTorch's
    ``F.cross_entropy`` convention).

    Args:
        smooth_factor (float): label smoothing eps in [0, 1). Default 0.05
            (the authors' value).
        ignore_index (int, optional): label to ignore. Default None: use the
            ``ignore_index`` the decode head passes (255 in MMSeg), else 255.
        avg_non_ignore (bool): average over non-ignored pixels only.
            Default False (see above).
        reduction (str): 'mean' (default), 'sum' or 'none'.
        loss_weight (float): multiplies the loss. Default 1.0.
        loss_name (str): name in the loss dict; must start with ``loss_``.
            Default 'loss_ce'.

    Shapes:
        pred: (N, K, H, W) logits; target: (N, H, W) class indices;
        weight (optional): (N, H, W) pixel weights (MMSeg's pixel sampler).
        Output: scalar, or (N, H, W) with reduction 'none'.
    """

    def __init__(self,
                 smooth_factor: float = 0.05,
                 ignore_index: Optional[int] = None,
                 avg_non_ignore: bool = False,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_ce'):
        super().__init__(ignore_index, loss_weight, loss_name)
        if not 0.0 <= smooth_factor < 1.0:
            raise ValueError('SoftCrossEntropyLoss: smooth_factor must be in '
                             f'[0, 1), got {smooth_factor}')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError('SoftCrossEntropyLoss: reduction must be none, '
                             f'mean or sum, got {reduction!r}')
        self.smooth_factor = smooth_factor
        self.avg_non_ignore = avg_non_ignore
        self.reduction = reduction

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                ignore_index: Optional[int] = None,
                **kwargs) -> Tensor:
        """Loss of ``pred`` (N, K, H, W) against ``target`` (N, H, W)."""
        reduction = reduction_override or self.reduction
        ignore = self.resolve_ignore_index(ignore_index)
        loss = soft_cross_entropy(pred, target.long(), self.smooth_factor,
                                  ignore)
        if (avg_factor is None and reduction == 'mean'
                and self.avg_non_ignore):
            avg_factor = (target != ignore).sum().item()
        if weight is not None:
            weight = weight.float()
        loss = weight_reduce_loss(loss, weight=weight, reduction=reduction,
                                  avg_factor=avg_factor)
        return self.loss_weight * loss
