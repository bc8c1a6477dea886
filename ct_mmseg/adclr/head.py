"""DINO's projection head and DINO's loss (mmpretrain 1.2.0 has neither).

ADCLR adds no parameters to DINO: one :class:`DINOHead` projects both the
[CLS] token and the query tokens, and the global and the query terms are two
:class:`DINOLoss` instances that differ only in their centre.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch.nn.utils.parametrizations import weight_norm

from .registry import MODELS


@MODELS.register_module()
class DINOHead(BaseModule):
    """DINO's head: MLP -> L2 norm -> weight-normalised linear layer.

    Args:
        in_channels: token width of the backbone.
        out_channels: number of prototypes K (DINO: 65536; the ADCLR code:
            8192).
        hidden_channels: MLP width (DINO: 2048).
        bottleneck_channels: MLP output, L2-normalised (DINO: 256).
        num_layers: linear layers in the MLP (DINO: 3).
        norm_last_layer: keep the last layer's weight-norm gain fixed at 1
            (DINO's default True; the ADCLR code trains it: False).
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
                f'model.head.num_layers must be >= 1, got {num_layers}')
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
        self.freeze_last_layer = False  # set by DINOScheduleHook

    @property
    def last_layer_gain(self) -> nn.Parameter:
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
        """(..., in_channels) tokens -> (..., out_channels) logits."""
        x = F.normalize(self.mlp(x), dim=-1)
        if self.freeze_last_layer:
            # DINO cancels the last layer's gradient early in training
            return F.linear(x, self.last_layer.weight.detach())
        return self.last_layer(x)


@MODELS.register_module()
class DINOLoss(BaseModule):
    """DINO's cross-view cross-entropy with a centred, sharpened teacher.

    ``loss = mean over ordered pairs (t, s), t != s, and over samples of
    H(softmax((teacher_t - c) / tau_t), log_softmax(student_s / tau_s))``,
    then the centre ``c`` follows the teacher's batch mean (all ranks) with
    momentum ``center_momentum``.

    The student's first views are the teacher's views in the same order
    (DINO: the two global views), so pair (t, s) with t == s is skipped.

    Args:
        out_channels: K, the head's output width (the centre's size).
        student_temp: tau_s (DINO 0.1).
        teacher_temp: tau_t, the value used when no ``DINOScheduleHook``
            sets it (DINO warms it up from 0.04 to 0.07).
        center_momentum: DINO 0.9.
    """

    def __init__(self,
                 out_channels: int,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.07,
                 center_momentum: float = 0.9,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.register_buffer('center', torch.zeros(out_channels))

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """
        Args:
            student_logits: (V_s, M, K): V_s views of M samples each.
            teacher_logits: (V_t, M, K), V_t <= V_s; no gradient flows to
                it.
        """
        num_teacher_views, num_student_views = \
            teacher_logits.shape[0], student_logits.shape[0]
        if num_teacher_views > num_student_views or \
                teacher_logits.shape[1:] != student_logits.shape[1:]:
            raise ValueError(
                f'teacher logits {tuple(teacher_logits.shape)} do not pair '
                f'with student logits {tuple(student_logits.shape)}')
        # float32: the sums run over K (thousands of) prototypes, too many
        # for fp16 under AMP
        teacher_logits = teacher_logits.detach().float()
        student_logits = student_logits.float()
        teacher_probs = F.softmax(
            (teacher_logits - self.center) / self.teacher_temp, dim=-1)
        student_log_probs = F.log_softmax(
            student_logits / self.student_temp, dim=-1)
        # (V_t, V_s): mean cross-entropy over samples for every view pair
        pair_loss = -torch.einsum('tmk,smk->ts', teacher_probs,
                                  student_log_probs) / student_logits.shape[1]
        other_view = ~torch.eye(num_teacher_views, num_student_views,
                                dtype=torch.bool,
                                device=pair_loss.device)
        self.update_center(teacher_logits)
        return pair_loss[other_view].mean()

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        batch_center = teacher_logits.flatten(0, -2).mean(0)
        all_reduce(batch_center, op='mean')
        self.center.mul_(self.center_momentum).add_(
            batch_center, alpha=1 - self.center_momentum)
