"""From an ADCLR checkpoint (mmpretrain) to MMSeg's ViT weights, checked.

An mmpretrain ADCLR/DINO checkpoint holds the student backbone under
``backbone.`` and the EMA teacher under ``teacher.module.0.`` (DINO
evaluates the teacher). Its ViT uses mmpretrain's parameter names, which
differ from MMSeg's ``VisionTransformer`` in the attention only:

* ``layers.i.attn.qkv.{weight,bias}`` ->
  ``layers.i.attn.attn.in_proj_{weight,bias}``
* ``layers.i.attn.proj.*`` -> ``layers.i.attn.attn.out_proj.*``

Both lay out q, k, v the same way, so the rename is the whole conversion.
MMSeg's ViT must be built with ``patch_bias=True`` and ``final_norm=True``
(its defaults are False and would leave two tensors unused).

MMSeg's ``VisionTransformer.init_weights`` loads with ``strict=False`` and
strips no prefix: an unconverted checkpoint loads *nothing* and training
silently starts from scratch. :func:`check_backbone_keys` turns that into an
error; ``tools/adclr_to_mmseg.py`` runs it on the converted weights and
``CheckPretrainedBackboneHook`` (pretrained_backbone_hook.py) in the
segmentation run.

Plain functions, no registry: the converter tool and the hook import them.
"""
import copy
import re
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.runner.checkpoint import CheckpointLoader

#: where each network's backbone sits in an ADCLR/DINO checkpoint
SOURCES = {'teacher': 'teacher.module.0.', 'student': 'backbone.'}
#: mmpretrain ViT name -> MMSeg ViT name
RENAMES = [
    (re.compile(r'^(layers\.\d+\.attn)\.qkv\.(weight|bias)$'),
     r'\1.attn.in_proj_\2'),
    (re.compile(r'^(layers\.\d+\.attn)\.proj\.(weight|bias)$'),
     r'\1.attn.out_proj.\2'),
]
#: tensors whose shape may differ: MMSeg resizes the position embedding to
#: the segmentation crop when it loads
RESIZED_AT_LOAD = ('pos_embed', )


class BackboneHandoffError(KeyError):
    """A pretrained backbone would not load completely."""

    def __str__(self):  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def load_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of a checkpoint file (MMEngine or plain)."""
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    return checkpoint.get('state_dict', checkpoint)


def top_level_prefixes(state_dict) -> list:
    return sorted({key.split('.')[0] + '.' for key in state_dict})


def strip_prefix(state_dict: Dict[str, torch.Tensor], prefix: str,
                 where: str = 'the checkpoint') -> Dict[str, torch.Tensor]:
    """The tensors under ``prefix``, with it removed; an error if none."""
    out = {key[len(prefix):]: value for key, value in state_dict.items()
           if key.startswith(prefix)}
    if not out:
        raise BackboneHandoffError(
            f'no key of {where} starts with {prefix!r}; its keys start with '
            f'{top_level_prefixes(state_dict)}')
    return out


def backbone_state_dict(state_dict: Dict[str, torch.Tensor],
                        source: str = 'teacher') -> Dict[str, torch.Tensor]:
    """The ViT of an ADCLR/DINO checkpoint, mmpretrain names."""
    if source not in SOURCES:
        raise ValueError(f'source must be one of {sorted(SOURCES)}, got '
                         f'{source!r}')
    return strip_prefix(state_dict, SOURCES[source],
                        f'the ADCLR checkpoint ({source})')


def to_mmseg_vit(backbone: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename an mmpretrain ViT state dict to MMSeg's ViT names."""
    converted = {}
    for key, value in backbone.items():
        for pattern, replacement in RENAMES:
            key = pattern.sub(replacement, key)
        converted[key] = value
    return converted


def check_backbone_keys(backbone: nn.Module,
                        state_dict: Dict[str, torch.Tensor],
                        where: str = 'the checkpoint') -> None:
    """Raise unless ``state_dict`` fills every tensor of ``backbone`` and
    nothing else, with matching shapes (the position embedding may differ:
    it is resized when loaded)."""
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f'{key}: {tuple(state_dict[key].shape)} vs '
        f'{tuple(expected[key].shape)}'
        for key in set(expected) & set(state_dict)
        if key not in RESIZED_AT_LOAD
        and state_dict[key].shape != expected[key].shape)
    if missing or unexpected or wrong_shape:
        hint = ''
        if any(k.startswith(tuple(SOURCES.values())) for k in unexpected):
            hint = ('\nThe checkpoint is a whole ADCLR model: extract and '
                    'convert its backbone with tools/adclr_to_mmseg.py.')
        elif any(re.search(r'attn\.(qkv|proj)\.', k) for k in unexpected):
            hint = ('\nThe checkpoint has mmpretrain ViT names: convert it '
                    'with tools/adclr_to_mmseg.py.')
        elif {'patch_embed.projection.bias', 'ln1.weight'} & set(unexpected):
            hint = ('\nBuild the MMSeg ViT with patch_bias=True and '
                    'final_norm=True, as mmpretrain\'s ViT is.')
        raise BackboneHandoffError(
            f'{where} does not fit the {type(backbone).__name__} backbone: '
            f'{len(missing)} missing keys {missing[:8]}, {len(unexpected)} '
            f'unexpected keys {unexpected[:8]}, {len(wrong_shape)} shape '
            f'mismatches {wrong_shape[:4]}.{hint}')


def mmseg_vit_settings(pretrain_backbone_cfg: dict) -> dict:
    """MMSeg ``VisionTransformer`` arguments that rebuild the ViT an
    mmpretrain backbone config describes (the arch and what MMSeg's
    defaults would otherwise drop)."""
    from mmpretrain.models.backbones import VisionTransformer
    arch = pretrain_backbone_cfg.get('arch', 'base')
    arch = VisionTransformer.arch_zoo[arch.lower()] if isinstance(
        arch, str) else arch
    settings = dict(
        embed_dims=arch['embed_dims'],
        num_layers=arch['num_layers'],
        num_heads=arch['num_heads'],
        mlp_ratio=arch['feedforward_channels'] // arch['embed_dims'],
        patch_size=pretrain_backbone_cfg.get('patch_size', 16),
        qkv_bias=pretrain_backbone_cfg.get('qkv_bias', True),
        patch_bias=True,
        final_norm=pretrain_backbone_cfg.get('final_norm', True),
        with_cls_token=True,
        norm_cfg=pretrain_backbone_cfg.get('norm_cfg',
                                           dict(type='LN', eps=1e-6)))
    if arch['feedforward_channels'] % arch['embed_dims']:
        raise ValueError('MMSeg\'s ViT needs feedforward_channels = '
                         'mlp_ratio * embed_dims, got '
                         f"{arch['feedforward_channels']} and "
                         f"{arch['embed_dims']}")
    return settings


def convert_checkpoint(path: str, source: str = 'teacher') -> dict:
    """An ADCLR/DINO checkpoint -> ``{'state_dict': MMSeg ViT tensors,
    'meta': ...}``, ready for ``model.pretrained``."""
    checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint)
    backbone = backbone_state_dict(state_dict, source)
    meta = dict(source=path, network=source,
                converted_by='ct_mmseg.adclr.checkpoint_conversion.'
                'convert_checkpoint')
    pretrain_cfg = pretrain_config(checkpoint)
    if pretrain_cfg is not None:
        meta['mmseg_vit_settings'] = mmseg_vit_settings(
            pretrain_cfg.model.backbone)
    return dict(state_dict=to_mmseg_vit(backbone), meta=meta)


def pretrain_config(checkpoint: dict) -> Optional['Config']:  # noqa: F821
    """The training config MMEngine stored in the checkpoint, if any."""
    from mmengine.config import Config
    text = checkpoint.get('meta', {}).get('cfg')
    return Config.fromstring(text, '.py') if text else None


def build_seg_backbone(config: str) -> nn.Module:
    """The backbone of an MMSeg config, built without loading weights."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.pop('init_cfg', None)
    backbone_cfg.pop('pretrained', None)
    return SEG_MODELS.build(backbone_cfg)


def check_against_config(state_dict: Dict[str, torch.Tensor],
                         config: str) -> None:
    """:func:`check_backbone_keys` against the backbone of an MMSeg
    config."""
    check_backbone_keys(build_seg_backbone(config), state_dict,
                        f'the converted checkpoint (for {config})')
