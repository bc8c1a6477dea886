"""SoftDiceLoss: multi-class soft dice with GeoSeg's semantics.

The paper's joint segmentation loss adds a dice loss (smooth 0.05) to the
soft cross-entropy. The authors (GeoSeg) use segmentation_models_pytorch's
multi-class ``DiceLoss``. MMSeg's own ``DiceLoss`` computes something else,
which is why this loss exists:

* MMSeg flattens classes AND pixels of each image into one vector and takes
  a single dice per image; GeoSeg takes one dice per class over the whole
  batch and averages the classes.
* MMSeg keeps the predictions of ignored pixels in the denominator (only
  their one-hot target becomes 0), and its ``ignore_index`` drops a class
  *channel*; GeoSeg masks ignored pixels out of prediction and target.
* MMSeg's denominator is squared by default (V-Net form) and uses
  ``eps=1e-3`` only in the denominator; GeoSeg adds ``smooth`` to numerator
  and denominator.
* GeoSeg zeroes the loss of classes absent from the batch's labels (but
  still divides by the number of classes); MMSeg has no such rule.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

from .base import SegLoss


def soft_dice_loss(pred: Tensor,
                   label: Tensor,
                   smooth: float = 0.05,
                   eps: float = 1e-7,
                   ignore_index: Optional[int] = 255) -> Tensor:
    """Mean over classes of ``1 - dice_k``, dice per class over the batch.

    With p = softmax(pred), g = onehot(label) and M the mask of labelled
    pixels, for every class k (sums over all N*H*W pixels)::

        inter_k = sum(M * p_k * g_k)
        card_k  = sum(M * p_k) + sum(M * g_k)
        dice_k  = (2 * inter_k + smooth) / max(card_k + smooth, eps)
        loss_k  = (1 - dice_k) if sum(M * g_k) > 0 else 0
        loss    = mean_k loss_k              # over all K classes

    Args:
        pred (Tensor): logits, (N, K, H, W).
        label (Tensor): class indices, (N, H, W).
        smooth (float): added to numerator and denominator. Default 0.05.
        eps (float): lower bound of the denominator. Default 1e-7.
        ignore_index (int, optional): label of pixels left out entirely.

    Returns:
        Tensor: scalar loss.
    """
    num_classes = pred.shape[1]
    if pred.dtype in (torch.float16, torch.bfloat16):
        # AMP: the sums run over every pixel of the batch (millions at
        # 32 x 512 x 512), beyond float16's range
        pred = pred.float()
    prob = F.softmax(pred, dim=1)  # (N, K, H, W)
    if ignore_index is not None:
        valid = label != ignore_index  # (N, H, W)
        label = torch.where(valid, label, torch.zeros_like(label))
    else:
        valid = torch.ones_like(label, dtype=torch.bool)
    mask = valid.unsqueeze(1).to(prob.dtype)  # (N, 1, H, W)
    onehot = F.one_hot(label.long(), num_classes).permute(0, 3, 1, 2)
    onehot = onehot.to(prob.dtype) * mask  # (N, K, H, W)
    prob = prob * mask
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)  # (K,)
    card = prob.sum(dims) + onehot.sum(dims)  # (K,)
    dice = (2.0 * inter + smooth) / (card + smooth).clamp_min(eps)
    present = (onehot.sum(dims) > 0).to(prob.dtype)  # (K,)
    return ((1.0 - dice) * present).mean()


@MODELS.register_module()
class SoftDiceLoss(SegLoss):
    """Multi-class soft dice loss as in GeoSeg (see :func:`soft_dice_loss`).

    Args:
        smooth (float): smoothing of numerator and denominator. Default 0.05
            (the authors' value).
        eps (float): lower bound of the denominator. Default 1e-7.
        ignore_index (int, optional): label to ignore. Default None: use the
            ``ignore_index`` the decode head passes (255 in MMSeg), else 255.
        loss_weight (float): multiplies the loss. Default 1.0.
        loss_name (str): name in the loss dict; must start with ``loss_``.
            Default 'loss_dice'.

    Shapes:
        pred: (N, K, H, W) logits; target: (N, H, W) class indices.
        Output: scalar (the dice is a batch statistic, so per-pixel
        ``weight`` and ``reduction='none'`` are not supported).
    """

    def __init__(self,
                 smooth: float = 0.05,
                 eps: float = 1e-7,
                 ignore_index: Optional[int] = None,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_dice'):
        super().__init__(ignore_index, loss_weight, loss_name)
        if smooth < 0:
            raise ValueError(
                f'SoftDiceLoss: smooth must be >= 0, got {smooth}')
        self.smooth = smooth
        self.eps = eps

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Loss of ``pred`` (N, K, H, W) against ``target`` (N, H, W)."""
        if weight is not None:
            raise ValueError('SoftDiceLoss does not support per-pixel weights '
                             '(an OHEM pixel sampler); use it without one')
        if reduction_override not in (None, 'mean'):
            raise ValueError('SoftDiceLoss is a batch statistic; only the '
                             f"'mean' reduction exists, got "
                             f'{reduction_override!r}')
        ignore = self.resolve_ignore_index(ignore_index)
        return self.loss_weight * soft_dice_loss(
            pred, target, self.smooth, self.eps, ignore)
