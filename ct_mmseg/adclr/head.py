"""DINO's and ADCLR's losses as mmpretrain heads (mmpretrain 1.2.0 has
neither).

As in mmpretrain's self-supervised algorithms, the neck
(:class:`~ct_mmseg.adclr.neck.DINONeck`) projects the tokens and the head
computes the loss from the student's and the teacher's projections:

* :class:`DINOLoss`: DINO's centred, sharpened cross-view cross-entropy; one
  instance per term, each with its own centre.
* :class:`DINOHead`: the [CLS] term (``loss_cls``).
* :class:`ADCLRHead`: the [CLS] term plus ADCLR's query term
  (``loss_query``, its own centre), weighted by ``query_loss_weight``.

The heads hold no parameters, only the centres (buffers): ADCLR adds no
parameter to DINO.
"""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.model import BaseModule

from .registry import MODELS

#: DINO's values (student 0.1, teacher 0.07 after its warm-up, centre 0.9)
DEFAULT_LOSS = dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                    teacher_temp=0.07, center_momentum=0.9)


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
        out_channels: K, the neck's output width (the centre's size).
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

        Returns:
            The scalar loss (float32).
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


@MODELS.register_module()
class DINOHead(BaseModule):
    """DINO's loss on the [CLS] projections.

    Args:
        out_channels: K, the neck's output width (the algorithm fills it in
            from the neck when left out).
        loss_cls: the [CLS] term, a ``ct_mmseg.DINOLoss`` config
            (``out_channels`` is filled in).
    """

    def __init__(self,
                 out_channels: int,
                 loss_cls: dict = DEFAULT_LOSS,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.out_channels = out_channels
        self.loss_cls = self.build_loss(loss_cls)

    def build_loss(self, cfg: dict) -> DINOLoss:
        cfg = copy.deepcopy(cfg)
        cfg.setdefault('out_channels', self.out_channels)
        return MODELS.build(cfg)

    def loss_terms(self) -> List[DINOLoss]:
        return [self.loss_cls]

    @property
    def teacher_temp(self) -> float:
        return self.loss_cls.teacher_temp

    @teacher_temp.setter
    def teacher_temp(self, value: float) -> None:
        """Set by ``DINOScheduleHook`` for every loss term at once."""
        for term in self.loss_terms():
            term.teacher_temp = value

    def loss(self, student_cls: torch.Tensor,
             teacher_cls: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            student_cls: the neck's logits of the student's [CLS] tokens,
                (V_s, B, K): global views first, then local views.
            teacher_cls: the teacher's, (V_t, B, K), its V_t global views in
                the student's order.

        Returns:
            ``dict(loss_cls=...)``.
        """
        return dict(loss_cls=self.loss_cls(student_cls, teacher_cls))


@MODELS.register_module()
class ADCLRHead(DINOHead):
    """DINO's [CLS] term plus ADCLR's query term.

    ``loss_query``: for every query i, teacher(q_i | view b) vs
    student(q_i | view a), a != b: the same cross-view loss as ``loss_cls``,
    with its own centre.

    Args:
        out_channels: as :class:`DINOHead`.
        loss_cls: as :class:`DINOHead`.
        loss_query: the query term, a ``ct_mmseg.DINOLoss`` config (default:
            DINO's values).
        query_loss_weight: lambda in ``loss_cls + lambda * loss_query``
            (the ADCLR authors' code: 1.0).
    """

    def __init__(self,
                 out_channels: int,
                 loss_cls: dict = DEFAULT_LOSS,
                 loss_query: dict = DEFAULT_LOSS,
                 query_loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None):
        if query_loss_weight < 0:
            raise ValueError('model.head.query_loss_weight must be >= 0, '
                             f'got {query_loss_weight}')
        super().__init__(out_channels, loss_cls=loss_cls, init_cfg=init_cfg)
        self.query_loss_weight = query_loss_weight
        self.loss_query = self.build_loss(loss_query)

    def loss_terms(self) -> List[DINOLoss]:
        return [self.loss_cls, self.loss_query]

    def loss(self, student_cls: torch.Tensor, teacher_cls: torch.Tensor,
             student_queries: torch.Tensor,
             teacher_queries: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            student_cls, teacher_cls: as :meth:`DINOHead.loss`.
            student_queries: the student's query logits, (V_t, B * Q, K):
                query i of image j read in each global view.
            teacher_queries: the teacher's, (V_t, B * Q, K), same order.

        Returns:
            ``dict(loss_cls=..., loss_query=...)``, ``loss_query`` already
            weighted by ``query_loss_weight``.
        """
        losses = super().loss(student_cls, teacher_cls)
        losses['loss_query'] = self.query_loss_weight * self.loss_query(
            student_queries, teacher_queries)
        return losses
