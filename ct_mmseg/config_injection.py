"""Add a ContrastiveTransformerHead to a stock MMSeg model config.

This is what lets one config fragment give CT to any MMSeg config: the
fragment sets ``ct_head=dict(...)`` (a key no stock config uses) and
``runner_type='ct_mmseg.CTRunner'``; the runner calls
:func:`add_ct_to_config` before building the model. Everything the head must
know about the model (channels and strides of the backbone stages, number of
classes, ignore index) is read from the model config or measured on the
backbone, so no channel list is ever written by hand.
"""
import copy
import warnings
from typing import List, Tuple

import torch
from mmengine.config import ConfigDict

from .checkpoint_format import auxiliary_layout

# the config key the CT checkpoint hook reads (ct_mmseg.hooks.checkpoint)
LAYOUT_KEY = 'ct_auxiliary_layout'

CT_HEAD_TYPES = ('ContrastiveTransformerHead',
                 'mmseg.ContrastiveTransformerHead')
MEASURE_SIZE = 128  # divisible by the usual strides (4 .. 32)


def infer_backbone_stages(backbone_cfg: dict,
                          measure_size: int = MEASURE_SIZE
                          ) -> Tuple[List[int], List[int]]:
    """Channels and strides of a backbone's 4-D outputs, measured.

    Builds the backbone from its config (without its ``init_cfg``, so no
    pretrained weights are read), runs one zero image of ``measure_size`` and
    reads each output's channels and ``measure_size // height``. The global RNG
    is restored afterwards so the real model's initialisation is unchanged.

    Args:
        backbone_cfg (dict): ``model.backbone`` of an MMSeg config.
        measure_size (int): side of the measuring image.

    Returns:
        tuple[list[int], list[int]]: channels and strides of each output.
    """
    from mmseg.registry import MODELS
    cfg = copy.deepcopy(backbone_cfg)
    cfg.pop('init_cfg', None)
    if 'pretrained' in cfg:
        cfg['pretrained'] = None
    with torch.random.fork_rng(devices=[]):
        backbone = MODELS.build(cfg)
        backbone.eval()  # some backbones' train() returns None, not self
        with torch.no_grad():
            outs = backbone(torch.zeros(1, 3, measure_size, measure_size))
    if isinstance(outs, torch.Tensor):
        outs = [outs]
    stages = [o for o in outs if isinstance(o, torch.Tensor) and o.dim() == 4]
    if not stages:
        raise ValueError('ct_head: could not infer in_channels, the backbone '
                         f'{cfg.get("type")} returns no (B, C, H, W) maps; '
                         'set ct_head.in_channels and ct_head.strides')
    channels = [int(o.shape[1]) for o in stages]
    strides = [max(1, round(measure_size / o.shape[2])) for o in stages]
    return channels, strides


def _is_ct_head(head) -> bool:
    return isinstance(head, dict) and head.get('type') in CT_HEAD_TYPES


def add_ct_to_config(cfg, key: str = 'ct_head'):
    """Insert ``cfg[key]`` as an auxiliary head of ``cfg.model``, in place.

    Missing head arguments are filled in: ``num_classes`` and
    ``ignore_index`` from ``model.decode_head``; ``in_channels`` and
    ``strides`` by :func:`infer_backbone_stages`; ``in_index`` defaults to all
    backbone outputs. An ``EncoderDecoder`` becomes a
    :class:`~ct_mmseg.models.CTEncoderDecoder` so that CT sees the backbone
    tokens even behind a neck (FPN). Calling it on a config that already has
    a CT head (e.g. the config the runner dumped to ``work_dir``) changes
    nothing.

    Args:
        cfg (Config | dict): a full MMSeg config with ``model`` and ``key``.
        key (str): the top-level key holding the head config.

    Returns:
        The same ``cfg``.
    """
    if key not in cfg or cfg[key] is None:
        raise KeyError(f'ct_mmseg.CTRunner needs a `{key}` dict in the config '
                       '(inherit configs/_base_/contrastive_transformer.py)')
    model = cfg['model']
    aux = model.get('auxiliary_head')
    aux_list = aux if isinstance(aux, (list, tuple)) else [aux]
    if any(_is_ct_head(h) for h in aux_list):
        return cfg

    head = ConfigDict(copy.deepcopy(dict(cfg[key])))
    head.setdefault('type', 'ContrastiveTransformerHead')
    if head['type'] not in CT_HEAD_TYPES:
        raise ValueError(f'{key}.type must be ContrastiveTransformerHead, '
                         f'got {head["type"]!r}')
    decode = model.get('decode_head')
    if isinstance(decode, (list, tuple)):
        decode = decode[-1]
    for name, default in (('num_classes', None), ('ignore_index', 255)):
        if head.get(name) is None:
            value = (decode or {}).get(name, default)
            if value is None:
                raise KeyError(f'{key}.{name} is not set and model.decode_head '
                               f'has no {name} to copy')
            head[name] = value
    if 'backbone' not in model:
        if head.get('in_channels') is None or head.get('strides') is None:
            raise KeyError(f'{key}: model has no backbone to infer '
                           'in_channels/strides from; set them')
    else:
        _fill_stages_from_backbone(head, model['backbone'], key)

    # Build the head once now so that a bad option fails here, before any
    # training starts, with the config key in the message.
    from mmseg.registry import MODELS
    try:
        MODELS.build(copy.deepcopy(head))
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise type(error)(f'{key}: {error}') from error

    # how the config laid out its own auxiliary heads: CT checkpoints are
    # saved under those names (ct_mmseg.hooks.CTCheckpointHook)
    cfg[LAYOUT_KEY] = auxiliary_layout(aux)
    if aux is None:
        model['auxiliary_head'] = head
    else:
        model['auxiliary_head'] = [*aux_list, head]
    if model.get('type') in ('EncoderDecoder', 'mmseg.EncoderDecoder'):
        model['type'] = 'CTEncoderDecoder'
    elif model.get('neck') is not None:
        warnings.warn(f'ct_mmseg: segmentor {model.get("type")} with a neck: '
                      'the CT head will see the neck outputs, not the '
                      'backbone tokens')
    return cfg


def _fill_stages_from_backbone(head: dict, backbone_cfg: dict, key: str):
    """Fill in_index/in_channels/strides from the measured backbone; check
    any value the user set against it, naming the config key at fault."""
    channels, strides = infer_backbone_stages(backbone_cfg)
    in_index = head.get('in_index')
    if in_index is None:
        in_index = list(range(len(channels)))
    if isinstance(in_index, int):
        in_index = [in_index]
    bad = [i for i in in_index if not isinstance(i, int) or
           not 0 <= i < len(channels)]
    if bad:
        raise IndexError(f'{key}.in_index={list(in_index)}: the backbone has '
                         f'{len(channels)} outputs, expected indices in '
                         f'[0, {len(channels)})')
    head['in_index'] = list(in_index)
    for name, measured in (('in_channels', channels), ('strides', strides)):
        expected = [measured[i] for i in in_index]
        given = head.get(name)
        if given is None:
            head[name] = expected
        elif list(given) != expected:
            raise ValueError(f'{key}.{name}={list(given)} does not match the '
                             f'backbone: expected {expected} for in_index '
                             f'{list(in_index)}')
