"""Export a CT-trained model for deployment: the plain segmentor only.

A CT config trains the baseline model plus training-only parts (the CT head,
CT's runner and hooks). :func:`export_for_inference` writes

* a config with none of them: the model as the config without the CT
  fragment describes it (``EncoderDecoder``, the config's own auxiliary
  heads), no ``runner_type``, ``ct_head`` or ct_mmseg hook, and ``ct_mmseg``
  in ``custom_imports`` only where the model itself uses a ct_mmseg module
  (e.g. the DCSwin and UNetFormer decode heads);
* a checkpoint with only ``state_dict`` (the plain model's tensors, the
  training-only ones dropped) and ``meta`` (``dataset_meta`` and where it
  came from): no optimizer, no message hub, nothing but tensors, strings,
  numbers and lists, so ``torch.load(weights_only=True)`` reads it anywhere.

The exported pair loads strictly into the baseline config of the same
model and gives bit-identical logits.
"""
import copy
import os
import os.path as osp
from typing import Any, Dict, Tuple

import torch
from mmengine.config import Config

from . import checkpoint_format
from .config_injection import CT_HEAD_TYPES, LAYOUT_KEY

# top-level keys only a CT training needs
CT_ONLY_KEYS = ('ct_head', LAYOUT_KEY)
CT_SEGMENTORS = ('CTEncoderDecoder', 'mmseg.CTEncoderDecoder')


def config_layout(cfg: Config) -> str:
    """The auxiliary layout of the config without CT: recorded by the CT
    runner in the config it dumps, else read from the config as written
    (the fragment adds the CT head only at run time)."""
    return cfg.get(LAYOUT_KEY) or checkpoint_format.auxiliary_layout(
        cfg.model.get('auxiliary_head'))


def plain_model_config(model: dict, layout: str) -> dict:
    """The model config without CT: CT heads removed from
    ``auxiliary_head`` (a ``[head, CT]`` list back to ``head`` for the
    ``'single'`` layout), ``CTEncoderDecoder`` back to ``EncoderDecoder``."""
    model = copy.deepcopy(model)
    aux = model.get('auxiliary_head')
    heads = aux if isinstance(aux, (list, tuple)) else [aux]
    kept = [h for h in heads if h is not None and
            h.get('type') not in CT_HEAD_TYPES]
    if layout == 'none' or not kept:
        model['auxiliary_head'] = None
    elif layout == 'single':
        model['auxiliary_head'] = kept[0]
    else:
        model['auxiliary_head'] = kept
    if model.get('type') in CT_SEGMENTORS:
        model['type'] = 'EncoderDecoder'
    return model


def _uses_ct_mmseg_modules(model: dict) -> bool:
    """Whether any ``type`` in the model config is a ct_mmseg class."""
    from mmseg.registry import MODELS
    found = []

    def walk(value: Any):
        if isinstance(value, dict):
            kind = value.get('type')
            if isinstance(kind, str):
                cls = MODELS.get(kind)
                found.append(cls is not None and
                             cls.__module__.startswith('ct_mmseg'))
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(model)
    return any(found)


def inference_config(cfg: Config) -> Config:
    """A copy of a CT config (as written, or as the CT runner dumped it)
    describing the plain inference model, with no training-only key."""
    cfg = copy.deepcopy(cfg)
    cfg.model = plain_model_config(cfg.model, config_layout(cfg))
    for key in CT_ONLY_KEYS:
        cfg.pop(key, None)
    if str(cfg.get('runner_type', '')).startswith('ct_mmseg.'):
        cfg.pop('runner_type')
    hooks = [h for h in cfg.get('custom_hooks') or []
             if not str(h.get('type', '')).startswith('ct_mmseg.')]
    cfg.custom_hooks = hooks
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    imports = [imports] if isinstance(imports, str) else list(imports)
    if not _uses_ct_mmseg_modules(cfg.model):
        imports = [i for i in imports if i.split('.')[0] != 'ct_mmseg']
    if imports:
        cfg.custom_imports = dict(
            imports=imports,
            allow_failed_imports=cfg.custom_imports.get(
                'allow_failed_imports', False))
    else:
        cfg.pop('custom_imports', None)
    return cfg


def inference_checkpoint(checkpoint: Dict, layout: str,
                         source: str = '') -> Dict:
    """The plain model's tensors and ``dataset_meta`` of a CT training
    checkpoint (either format: :mod:`ct_mmseg.checkpoint_format` or
    MMEngine's own with the CT keys inline)."""
    checkpoint = dict(checkpoint)
    if checkpoint_format.SECTION in checkpoint:
        state = checkpoint['state_dict']
    else:
        state = checkpoint_format.read_plain(
            dict(state_dict=checkpoint['state_dict']), model=None,
            layout=layout)['state_dict']
    meta = checkpoint.get('meta') or {}
    return dict(state_dict=state,
                meta=dict(dataset_meta=meta.get('dataset_meta'),
                          exported_from=source,
                          exported_by='ct_mmseg.export'))


def export_for_inference(config: str, checkpoint: str, out_dir: str,
                         name: str = None) -> Tuple[str, str]:
    """Write ``<out_dir>/<name>.py`` and ``<out_dir>/<name>.pth``.

    Args:
        config (str): the CT config the model was trained with, or the one
            the runner dumped into the work_dir.
        checkpoint (str): a checkpoint of that training.
        out_dir (str): output folder (created).
        name (str, optional): file stem; default: the checkpoint's, with
            ``_inference`` appended.

    Returns:
        tuple[str, str]: the written config and checkpoint paths.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    cfg = Config.fromfile(config)
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if 'state_dict' not in loaded:
        raise KeyError(f'{checkpoint}: no state_dict; not an MMEngine '
                       'checkpoint')
    name = name or osp.splitext(osp.basename(checkpoint))[0] + '_inference'
    os.makedirs(out_dir, exist_ok=True)
    config_out = osp.join(out_dir, name + '.py')
    checkpoint_out = osp.join(out_dir, name + '.pth')
    inference_config(cfg).dump(config_out)
    torch.save(inference_checkpoint(loaded, config_layout(cfg),
                                    osp.abspath(checkpoint)),
               checkpoint_out)
    return config_out, checkpoint_out
