"""ct_mmseg: Contrastive Transformer (CT) for MMSegmentation 1.x.

Importing the package registers ``ContrastiveTransformerHead``,
``PatchContrastLoss``, ``CTEncoderDecoder`` (and the DCSwin / UNetFormer
heads and the soft CE / dice losses) in MMSeg's ``MODELS`` registry and
``PerClassIoUMetric`` in its ``METRICS``, and makes MMEngine checkpoints load
on torch >= 2.6 with ``weights_only=True``.
"""
from . import datasets  # noqa: F401  (registers DubaiAerialDataset)
from . import adclr  # noqa: F401  (ADCLR pretraining: docs/adclr.md)
from . import evaluation  # noqa: F401  (registers PerClassIoUMetric)
from .checkpoint import register_checkpoint_loader
from .models import (ContrastiveTransformerHead, CTEncoderDecoder,
                     PatchContrastLoss)
from .version import __version__

register_checkpoint_loader()

__all__ = [
    'ContrastiveTransformerHead', 'CTEncoderDecoder', 'PatchContrastLoss',
    '__version__'
]
