"""A segmentor that feeds CT the backbone's tokens even when there is a neck."""
from typing import Dict, List

import torch.nn as nn
from mmengine.model import ModuleList
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList, add_prefix
from torch import Tensor

from .ct_head import ContrastiveTransformerHead


@MODELS.register_module()
class CTEncoderDecoder(EncoderDecoder):
    """:class:`EncoderDecoder` whose CT auxiliary heads see the backbone.

    MMSeg hands auxiliary heads the neck's outputs. CT contrasts the patch
    tokens of the backbone stages, so this segmentor gives every
    :class:`ContrastiveTransformerHead` among the auxiliary heads the raw
    backbone outputs and every other head the usual (neck) features. Without
    a neck it behaves exactly like :class:`EncoderDecoder`. Inference is
    inherited unchanged; the parameter names are the same, so checkpoints
    move freely between the two classes.
    """

    def _init_auxiliary_head(self, auxiliary_head) -> None:
        """MMSeg's, with a list of heads held in MMEngine's ``ModuleList``.

        MMSeg holds a list of auxiliary heads in ``torch.nn.ModuleList``,
        which has no ``init_weights``, so MMEngine's initialisation never
        reaches the heads in it: their ``init_cfg`` is silently skipped.
        The fragment turns a single auxiliary head into ``[head, CT]``; with
        MMSeg's list, that head would then start from PyTorch's default
        weights instead of its ``init_cfg``, and every later draw of the
        global RNG would shift. Here each listed head is initialised as a
        single head is, in list order.
        """
        super()._init_auxiliary_head(auxiliary_head)
        if isinstance(self.auxiliary_head, nn.ModuleList):
            self.auxiliary_head = ModuleList(list(self.auxiliary_head))

    def loss(self, inputs: Tensor, data_samples: SampleList) -> Dict[str, Tensor]:
        backbone_feats = self.backbone(inputs)
        feats = self.neck(backbone_feats) if self.with_neck else backbone_feats
        losses = dict()
        losses.update(self._decode_head_forward_train(feats, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train_ct(
                feats, backbone_feats, data_samples))
        return losses

    def _auxiliary_head_forward_train_ct(self, feats: List[Tensor],
                                         backbone_feats: List[Tensor],
                                         data_samples: SampleList) -> dict:
        heads = self.auxiliary_head
        single = not isinstance(heads, nn.ModuleList)
        heads = [heads] if single else list(heads)
        losses = dict()
        for idx, head in enumerate(heads):
            head_inputs = backbone_feats if isinstance(
                head, ContrastiveTransformerHead) else feats
            loss = head.loss(head_inputs, data_samples, self.train_cfg)
            prefix = 'aux' if single else f'aux_{idx}'
            losses.update(add_prefix(loss, prefix))
        return losses
