"""Segmentation losses of the paper's recipe, registered in MMSeg's MODELS.

``SoftCrossEntropyLoss`` (label smoothing) and ``SoftDiceLoss`` (GeoSeg's
multi-class dice); the paper trains every model with their 1:1 sum.
"""
from .soft_cross_entropy_loss import SoftCrossEntropyLoss, soft_cross_entropy
from .soft_dice_loss import SoftDiceLoss, soft_dice_loss

__all__ = [
    'SoftCrossEntropyLoss', 'SoftDiceLoss', 'soft_cross_entropy',
    'soft_dice_loss'
]
