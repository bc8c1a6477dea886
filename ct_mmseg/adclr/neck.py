"""DINO's projection MLP as an mmpretrain neck (mmpretrain 1.2.0 has none).

In mmpretrain's self-supervised algorithms the neck projects the backbone's
features and the head computes the loss (BYOL, MoCo v3, SimCLR). Here
:class:`DINONeck` projects both the [CLS] token and ADCLR's query tokens
(ADCLR adds no parameters to DINO) to K prototype logits, and
``ct_mmseg.DINOHead`` / ``ct_mmseg.ADCLRHead`` (head.py) turn the student's
and the teacher's logits into the loss.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch.nn.utils.parametrizations import weight_norm

from .registry import MODELS


@MODELS.register_module()
class DINONeck(BaseModule):
    """DINO's projection: MLP -> L2 norm -> weight-normalised linear layer.

    ``in_channels -> hidden_channels (GELU) -> ... -> bottleneck_channels``,
    L2-normalised, then a bias-free linear layer to ``out_channels`` whose
    weight is split into a gain g and a direction v (weight norm).

    Args:
        in_channels: token width of the backbone (the algorithm fills it in
            from the backbone when left out).
        out_channels: number of prototypes K (DINO: 65536; the ADCLR
            authors' code: 8192).
        hidden_channels: MLP width (DINO: 2048).
        bottleneck_channels: MLP output, L2-normalised (DINO: 256).
        num_layers: linear layers in the MLP (DINO: 3).
        norm_last_layer: keep the last layer's weight-norm gain fixed at 1
            (DINO's default True; the ADCLR authors' code trains it: False).
        init_cfg: MMEngine init config; None = DINO's init (see
            :meth:`init_mlp`).

    Attributes:
        freeze_last_layer: while True (set by ``DINOScheduleHook`` early in
            training, as DINO does), no gradient reaches the last layer.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int = 65536,
                 hidden_channels: int = 2048,
                 bottleneck_channels: int = 256,
                 num_layers: int = 3,
                 norm_last_layer: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(
                f'model.neck.num_layers must be >= 1, got {num_layers}')
        self.out_channels = out_channels
        widths = [in_channels] + [hidden_channels] * (num_layers - 1) + \
            [bottleneck_channels]
        layers = []
        for i, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            layers.append(nn.Linear(width_in, width_out))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        # torch's parametrization API (nn.utils.weight_norm is deprecated):
        # original0 is the gain g, original1 the direction v.
        self.last_layer = weight_norm(
            nn.Linear(bottleneck_channels, out_channels, bias=False))
        self.init_mlp()
        self.norm_last_layer = norm_last_layer
        self.last_layer_gain.requires_grad_(not norm_last_layer)
        self.freeze_last_layer = False

    @property
    def last_layer_gain(self) -> nn.Parameter:
        """The weight-norm gain g of the last layer, (out_channels, 1)."""
        return self.last_layer.parametrizations.weight.original0

    def init_mlp(self) -> None:
        """DINO's init: truncated normal (std 0.02) MLP, zero biases; the
        last layer keeps torch's default direction and a gain of 1."""
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.last_layer_gain.fill_(1.)

    def init_weights(self) -> None:
        if self.init_cfg is None:
            self.init_mlp()  # runner-called init repeats DINO's, seeded
        else:
            super().init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project tokens to prototype logits.

        Args:
            x: tokens, (..., in_channels), e.g. (N, C) with the [CLS] tokens
                of every view and then the query tokens.

        Returns:
            Logits, (..., out_channels).
        """
        x = F.normalize(self.mlp(x), dim=-1)
        if self.freeze_last_layer:
            # DINO cancels the last layer's gradient early in training
            return F.linear(x, self.last_layer.weight.detach())
        return self.last_layer(x)
