from . import decode_heads  # noqa: F401
from .ct_encoder_decoder import CTEncoderDecoder
from .ct_head import ContrastiveTransformerHead
from .patch_contrast_loss import PatchContrastLoss

__all__ = ['ContrastiveTransformerHead', 'CTEncoderDecoder', 'PatchContrastLoss']
