"""ADCLR (Zhang et al., ICLR 2023): query-patch self-supervised pretraining
for the ViTs that CT fine-tunes, in mmpretrain's self-supervised framework.

Importing it registers, with scope ``ct_mmseg`` under mmpretrain's
registries: the algorithms ``ADCLR`` and ``DINO`` (queries off), the
backbone ``ADCLRViT``, the neck ``DINONeck`` (projection MLP), the heads
``DINOHead`` and ``ADCLRHead`` (the losses, built from ``DINOLoss``) and
``DINOScheduleHook``; and, under ct_mmseg's MMSeg registry,
``CheckPretrainedBackboneHook`` (the segmentation side of the handoff).

Modules: algorithm.py, vit.py, neck.py, head.py, hooks.py (pretraining);
checkpoint_conversion.py (ADCLR checkpoint -> MMSeg ViT weights, plain
functions), pretrained_backbone_hook.py (the MMSeg hook); knn_eval.py
(k-NN evaluation of frozen patch tokens); compat.py. See docs/adclr.md.
"""
from .algorithm import ADCLR, DINO
from .checkpoint_conversion import (BackboneHandoffError, check_backbone_keys,
                                    convert_checkpoint, to_mmseg_vit)
from .compat import patch_mmcv_adjust_hue
from .head import ADCLRHead, DINOHead, DINOLoss
from .hooks import DINOScheduleHook
from .neck import DINONeck
from .pretrained_backbone_hook import CheckPretrainedBackboneHook
from .vit import ADCLRViT, query_attention_mask

# DINO's colour jitter crashes in mmcv 2.1.0 on numpy >= 2 (compat.py)
patch_mmcv_adjust_hue()

__all__ = [
    'ADCLR', 'DINO', 'ADCLRViT', 'DINONeck', 'DINOHead', 'ADCLRHead',
    'DINOLoss', 'DINOScheduleHook', 'CheckPretrainedBackboneHook',
    'BackboneHandoffError', 'check_backbone_keys', 'convert_checkpoint',
    'to_mmseg_vit', 'query_attention_mask'
]
