"""ADCLR (Zhang et al., ICLR 2023): query-patch self-supervised pretraining
for the ViTs that CT fine-tunes, in mmpretrain's self-supervised framework.

Importing it registers, with scope ``ct_mmseg`` under mmpretrain's
registries: ``ADCLR``, ``DINO`` (queries off), ``ADCLRViT``, ``DINOHead``,
``DINOLoss`` and ``DINOScheduleHook``; and, under ct_mmseg's MMSeg
registry, ``CheckPretrainedBackboneHook`` (the segmentation side of the
handoff). See docs/adclr.md.
"""
from .algorithm import ADCLR, DINO
from .compat import patch_mmcv_adjust_hue
from .handoff import (BackboneHandoffError, CheckPretrainedBackboneHook,
                      check_backbone_keys, convert_checkpoint, to_mmseg_vit)
from .head import DINOHead, DINOLoss
from .hooks import DINOScheduleHook
from .vit import ADCLRViT, query_attention_mask

# DINO's colour jitter crashes in mmcv 2.1.0 on numpy >= 2 (compat.py)
patch_mmcv_adjust_hue()

__all__ = [
    'ADCLR', 'DINO', 'ADCLRViT', 'DINOHead', 'DINOLoss', 'DINOScheduleHook',
    'CheckPretrainedBackboneHook', 'BackboneHandoffError',
    'check_backbone_keys', 'convert_checkpoint', 'to_mmseg_vit',
    'query_attention_mask'
]
