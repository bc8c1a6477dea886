"""Decoders of the paper's baselines (DCSwin, UNetFormer) as MMSeg heads.

Importing this package registers ``DCSwinHead``, ``UNetFormerHead`` and
``UNetFormerAuxHead`` in MMSeg's ``MODELS`` registry.
"""
from .dcswin_head import (DCSwinHead, SharedChannelAttention,
                          SharedSpatialAttention)
from .unetformer_head import (GlobalLocalAttention, UNetFormerAuxHead,
                              UNetFormerHead)

__all__ = [
    'DCSwinHead', 'SharedSpatialAttention', 'SharedChannelAttention',
    'UNetFormerHead', 'UNetFormerAuxHead', 'GlobalLocalAttention'
]
