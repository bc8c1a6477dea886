# Stock MMSeg Swin-T + UPerNet on ADE20K, plus Contrastive Transformer.
# CT comes only from the fragment; nothing of the stock model is repeated.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',  # noqa
    '../_base_/contrastive_transformer.py',
]
# The stock config downloads ImageNet weights at start-up. Offline, point
# `model.backbone.init_cfg.checkpoint` at a local copy, or train from scratch:
#   --cfg-options model.backbone.init_cfg=None
