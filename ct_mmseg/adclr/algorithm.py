"""DINO and ADCLR as mmpretrain self-supervisors.

Inputs come from mmpretrain's ``MultiView`` transform: a list of view
batches, in this order:

* ``num_global_views`` global views (DINO's two 224 px crops),
* ``num_local_views`` local views (DINO's multi-crop; 0 by default),
* ``num_queries`` query crops (ADCLR only): crops of the *raw image*, one set
  per image shared by both global views, as small as one patch (one token
  each, the default) or a multiple of it.

As in mmpretrain's self-supervised algorithms, ``loss()`` runs backbone ->
neck -> ``head.loss``: the backbone (``ADCLRViT``) reads the views and the
query crops, the neck (``DINONeck``, DINO's projection MLP) projects the
[CLS] and query tokens to prototype logits, and the head (``DINOHead`` /
``ADCLRHead``) computes the loss terms. The teacher is mmpretrain's
``CosineEMA`` of the student's backbone + neck. It reads the global views
(with the queries), the student reads every view.

* DINO term, on [CLS]: teacher(view b) vs student(view a), a != b.
* ADCLR's query term: for every query i, teacher(q_i | view b) vs
  student(q_i | view a), a != b, with its own centre. The queries are read
  by the same backbone and the same neck: no parameter beyond DINO's.

``loss = loss_cls + query_loss_weight * loss_query``.
"""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA
from mmpretrain.structures import DataSample

from .head import ADCLRHead, DINOHead
from .neck import DINONeck
from .registry import MODELS
from .vit import ADCLRViT


def build_part(part, key: str, expected: type, **defaults) -> nn.Module:
    """``model.<key>``: built from its config (``defaults`` filled in where
    the config leaves them out) or taken as given; it must be an
    ``expected``."""
    if isinstance(part, dict):
        part = copy.deepcopy(part)
        for name, value in defaults.items():
            part.setdefault(name, value)
        part = MODELS.build(part)
    if not isinstance(part, expected):
        raise TypeError(f"model.{key} must be a "
                        f"'ct_mmseg.{expected.__name__}' "
                        f'(got {type(part).__name__})')
    return part


@MODELS.register_module()
class DINO(BaseSelfSupervisor):
    """DINO (Caron et al. 2021) on an :class:`ADCLRViT`: ADCLR with the
    queries off, the baseline that ADCLR's query term is measured against.

    Args:
        backbone: an ``ct_mmseg.ADCLRViT`` config (mmpretrain's
            VisionTransformer arguments).
        neck: a ``ct_mmseg.DINONeck`` config (DINO's projection MLP);
            ``in_channels`` defaults to the backbone's width.
        head: a ``ct_mmseg.DINOHead`` config (the loss);
            ``out_channels`` defaults to the neck's.
        num_global_views: views the teacher reads (DINO: 2).
        num_local_views: extra small views only the student reads (DINO's
            multi-crop; 0 = off).
        teacher_momentum: the teacher's share in its EMA update, in DINO's
            convention (0.996), raised to ``teacher_momentum_end`` (1.0) on a
            cosine over the run. mmpretrain's ``CosineEMA`` counts the
            student's share, so it gets ``1 - teacher_momentum``.
        data_preprocessor: defaults to mmpretrain's SelfSupDataPreprocessor.
    """
    num_queries = 0  # ADCLR sets it; DINO reads no query crops
    head_class = DINOHead  # the head's class (ADCLR: ADCLRHead)

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 num_global_views: int = 2,
                 num_local_views: int = 0,
                 teacher_momentum: float = 0.996,
                 teacher_momentum_end: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if num_global_views < 2:
            raise ValueError('model.num_global_views must be >= 2 (the '
                             f'cross-view loss), got {num_global_views}')
        if num_local_views < 0:
            raise ValueError('model.num_local_views must be >= 0, got '
                             f'{num_local_views}')
        for key, value in (('teacher_momentum', teacher_momentum),
                           ('teacher_momentum_end', teacher_momentum_end)):
            if not 0. <= value <= 1.:
                raise ValueError(f'model.{key} must lie in [0, 1], got '
                                 f'{value}')
        backbone = build_part(backbone, 'backbone', ADCLRViT)
        neck = build_part(neck, 'neck', DINONeck,
                          in_channels=backbone.embed_dims)
        head = build_part(head, 'head', self.head_class,
                          out_channels=neck.out_channels)
        if isinstance(head, ADCLRHead) and \
                not issubclass(self.head_class, ADCLRHead):
            raise TypeError(
                "model.head: 'ct_mmseg.ADCLRHead' holds the query term, "
                "which DINO has not: use 'ct_mmseg.DINOHead' (or "
                "type='ct_mmseg.ADCLR')")
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.num_global_views = num_global_views
        self.num_local_views = num_local_views
        self.teacher = CosineEMA(
            nn.Sequential(self.backbone, self.neck),
            momentum=1. - teacher_momentum,
            end_momentum=1. - teacher_momentum_end)

    @property
    def teacher_backbone(self) -> ADCLRViT:
        return self.teacher.module[0]

    @property
    def teacher_neck(self) -> DINONeck:
        return self.teacher.module[1]

    def train(self, mode: bool = True) -> 'DINO':
        """The teacher always runs in eval mode (no drop path, as in
        DINO, where it is built without)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def split_views(self, inputs: List[torch.Tensor]):
        """(global views, local views, query crops) with their checks."""
        if isinstance(inputs, torch.Tensor) or not isinstance(inputs, list):
            raise TypeError(
                'ADCLR/DINO take a list of views: use MultiView in '
                'train_dataloader.dataset.pipeline and '
                "collate_fn=dict(type='default_collate')")
        expected = self.num_global_views + self.num_local_views + \
            self.num_queries
        if len(inputs) != expected:
            raise ValueError(
                f'the pipeline gives {len(inputs)} views per image but the '
                f'model expects {expected} (model.num_global_views='
                f'{self.num_global_views} + model.num_local_views='
                f'{self.num_local_views} + model.num_queries='
                f'{self.num_queries}): make MultiView.num_views in '
                'train_dataloader.dataset.pipeline add up to the same, in '
                'the order global, local, query')
        first_local = self.num_global_views
        first_query = first_local + self.num_local_views
        global_views = inputs[:first_local]
        local_views = inputs[first_local:first_query]
        queries = inputs[first_query:]
        for name, views in (('global', global_views), ('local', local_views),
                            ('query', queries)):
            shapes = {tuple(view.shape[-2:]) for view in views}
            if len(shapes) > 1:
                raise ValueError(f'the {name} views have different sizes '
                                 f'{sorted(shapes)}: give their '
                                 'RandomResizedCrop one scale')
        return global_views, local_views, queries

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        global_views, local_views, queries = self.split_views(inputs)
        num_global = len(global_views)
        batch = global_views[0].shape[0]
        query_batch = self.check_queries(global_views[0], queries)
        # one student pass per resolution, views stacked along the batch
        global_batch = torch.cat(global_views)
        # every global view reads the same query crops
        queries_per_view = None if query_batch is None else \
            query_batch.repeat(num_global, 1, 1, 1, 1)
        student_cls, student_query_tokens = self.read_tokens(
            self.backbone, global_batch, queries_per_view)
        if local_views:
            local_tokens, _ = self.backbone.forward_with_queries(
                torch.cat(local_views))
            student_cls = torch.cat((student_cls, local_tokens[:, 0]))
        student_logits = self.neck(self.token_batch(student_cls,
                                                    student_query_tokens))

        with torch.no_grad():
            self.teacher.update_parameters(
                nn.Sequential(self.backbone, self.neck))
            teacher_cls, teacher_query_tokens = self.read_tokens(
                self.teacher_backbone, global_batch, queries_per_view)
            teacher_logits = self.teacher_neck(
                self.token_batch(teacher_cls, teacher_query_tokens))

        num_student_cls = student_cls.shape[0]
        num_teacher_cls = teacher_cls.shape[0]
        # (views, batch, K) for [CLS]
        cls_logits = (
            student_logits[:num_student_cls].unflatten(0, (-1, batch)),
            teacher_logits[:num_teacher_cls].unflatten(0, (-1, batch)))
        if query_batch is None:
            losses = self.head.loss(*cls_logits)
        else:
            # (views, batch * queries, K): query i of image j pairs across
            # the views of image j
            losses = self.head.loss(
                *cls_logits,
                student_logits[num_student_cls:].unflatten(
                    0, (num_global, -1)),
                teacher_logits[num_teacher_cls:].unflatten(
                    0, (num_global, -1)))
        losses['teacher_temp'] = global_batch.new_tensor(
            self.head.teacher_temp)
        return losses

    def check_queries(self, view: torch.Tensor,
                      queries: List[torch.Tensor]) -> Optional[torch.Tensor]:
        """Query crops stacked to (B, Q, 3, S, S); None for DINO."""
        return None

    def read_tokens(self, backbone: ADCLRViT, views: torch.Tensor,
                    queries: Optional[torch.Tensor]):
        """[CLS] tokens (V*B, C) and one token per query (V*B, Q, C), the
        mean of its tokens when a query crop spans several patches."""
        image_tokens, query_tokens = backbone.forward_with_queries(
            views, queries)
        if query_tokens is not None:
            query_tokens = query_tokens.mean(2)
        return image_tokens[:, 0], query_tokens

    @staticmethod
    def token_batch(cls_tokens: torch.Tensor,
                    query_tokens: Optional[torch.Tensor]) -> torch.Tensor:
        """[CLS] tokens then query tokens, as one batch for the neck."""
        if query_tokens is None:
            return cls_tokens
        return torch.cat((cls_tokens, query_tokens.flatten(0, 1)))


@MODELS.register_module()
class ADCLR(DINO):
    """ADCLR (Zhang et al., ICLR 2023) on DINO: query crops as extra tokens.

    Args:
        num_queries: query crops per image (>= 1; for no queries use
            ``type='ct_mmseg.DINO'``).
        **kwargs: :class:`DINO`'s arguments; ``head`` must be a
            ``ct_mmseg.ADCLRHead`` config (it holds the query term, its
            centre and its weight).
    """

    head_class = ADCLRHead

    def __init__(self, *args, num_queries: int = 1, **kwargs):
        if not isinstance(num_queries, int) or num_queries < 1:
            raise ValueError(
                f'model.num_queries must be an int >= 1, got '
                f"{num_queries!r}; for DINO without queries use type="
                "'ct_mmseg.DINO' (and drop the query views from MultiView)")
        super().__init__(*args, **kwargs)
        self.num_queries = num_queries

    def check_queries(self, view: torch.Tensor,
                      queries: List[torch.Tensor]) -> torch.Tensor:
        query_size = tuple(queries[0].shape[-2:])
        view_size = tuple(view.shape[-2:])
        patch = self.backbone.patch_size
        if query_size[0] != query_size[1] or query_size[0] % patch:
            raise ValueError(
                f'query crops are {query_size[0]}x{query_size[1]} px: they '
                f'must be square and a multiple of the patch size {patch} '
                '(model.backbone.patch_size); set the query '
                'RandomResizedCrop scale in train_dataloader.dataset.pipeline')
        if query_size[0] > min(view_size):
            raise ValueError(
                f'query crops ({query_size[0]} px) are larger than the '
                f'global views ({view_size[0]}x{view_size[1]} px): a query '
                'is a small part of the image; lower the query '
                'RandomResizedCrop scale in train_dataloader.dataset.pipeline')
        return torch.stack(queries, dim=1)
