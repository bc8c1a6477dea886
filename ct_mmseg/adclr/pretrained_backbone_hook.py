"""The segmentation side of the ADCLR handoff: a hook that stops an MMSeg
run whose pretrained backbone did not load completely.

MMSeg's ``VisionTransformer`` loads ``model.pretrained`` non-strictly and
strips no prefix, so a checkpoint that does not fit loads nothing and only
a warning is printed. :class:`CheckPretrainedBackboneHook` turns that into
an error before training. The key checks are checkpoint_conversion.py's.
"""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS as SEG_HOOKS
from .checkpoint_conversion import (RESIZED_AT_LOAD, BackboneHandoffError,
                                    check_backbone_keys, load_state_dict,
                                    strip_prefix)


@SEG_HOOKS.register_module()
class CheckPretrainedBackboneHook(Hook):
    """Fail the segmentation run if the pretrained backbone did not load.

    Before training, the checkpoint named by ``model.backbone.init_cfg``
    (``model.pretrained`` sets it for MMSeg's ViT) must fill every backbone
    tensor and nothing else (:func:`check_backbone_keys`; an init_cfg
    ``prefix`` is honoured), and, unless the run resumes or uses
    ``load_from``, the backbone must now hold those tensors.
    """
    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        backbone = model.backbone
        init_cfg = backbone.init_cfg
        if isinstance(init_cfg, list):
            init_cfg = next((c for c in init_cfg
                             if c.get('type') == 'Pretrained'), None)
        if not (isinstance(init_cfg, dict)
                and init_cfg.get('type') == 'Pretrained'
                and init_cfg.get('checkpoint')):
            raise ValueError(
                'CheckPretrainedBackboneHook: the backbone has no pretrained '
                'checkpoint: set model.pretrained (MMSeg ViT) or '
                "model.backbone.init_cfg=dict(type='Pretrained', "
                'checkpoint=...)')
        path = init_cfg['checkpoint']
        state_dict = load_state_dict(path)
        if init_cfg.get('prefix'):
            state_dict = strip_prefix(state_dict, init_cfg['prefix'], path)
        check_backbone_keys(backbone, state_dict,
                            f'the pretrained checkpoint {path}')
        resumed = runner._resume or runner._load_from is not None
        if not resumed:
            current = backbone.state_dict()
            differ = sorted(key for key, value in state_dict.items()
                            if key not in RESIZED_AT_LOAD
                            and not torch.equal(current[key].cpu(), value))
            if differ:
                raise BackboneHandoffError(
                    f'the backbone does not hold the weights of {path}: '
                    f'{len(differ)} tensors differ, e.g. {differ[:4]}. Was '
                    'it loaded by model.backbone.init_cfg?')
        runner.logger.info(
            f'Pretrained backbone: all {len(state_dict)} tensors of {path} '
            'loaded (0 missing, 0 unexpected keys)')
