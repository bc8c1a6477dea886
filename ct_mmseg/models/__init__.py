from .ct_encoder_decoder import CTEncoderDecoder
from .ct_head import ContrastiveTransformerHead
from .patch_contrast_loss import PatchContrastLoss

__all__ = ['ContrastiveTransformerHead', 'CTEncoderDecoder', 'PatchContrastLoss']
