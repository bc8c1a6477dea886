from . import decode_heads  # noqa: F401
from . import losses  # noqa: F401  (SoftCrossEntropyLoss, SoftDiceLoss)
from .ct_encoder_decoder import CTEncoderDecoder
from .ct_head import ContrastiveTransformerHead
from .patch_contrast_loss import PatchContrastLoss

__all__ = ['ContrastiveTransformerHead', 'CTEncoderDecoder', 'PatchContrastLoss']
