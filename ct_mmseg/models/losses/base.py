"""What the segmentation losses share: ignored label, weight and name."""
from typing import Optional

import torch.nn as nn


class SegLoss(nn.Module):
    """Base of the MMSeg ``loss_decode`` losses of this package.

    Args:
        ignore_index (int, optional): label to ignore. None: use the
            ``ignore_index`` the decode head passes (255 in MMSeg), else 255.
        loss_weight (float): multiplies the loss.
        loss_name (str): name in the loss dict; must start with ``loss_``.
    """

    def __init__(self, ignore_index: Optional[int], loss_weight: float,
                 loss_name: str):
        super().__init__()
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def resolve_ignore_index(self, ignore_index: Optional[int]) -> int:
        """The label to ignore in a call given the head's ``ignore_index``:
        this loss's own, else the head's, else 255."""
        if self.ignore_index is not None:
            return self.ignore_index
        return 255 if ignore_index is None else ignore_index

    @property
    def loss_name(self) -> str:
        """Key of this loss in the loss dict (MMSeg sums keys with 'loss')."""
        return self._loss_name
