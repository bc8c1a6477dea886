# UNetFormer baseline (paper Table 1, row "UnetFormer (Baseline)", Swin
# backbone) on ISPRS Potsdam: MMSeg's Swin-T + ct_mmseg's UNetFormerHead
# (decoder width 64, GLA window 8, as published) + UNetFormerAuxHead
# (training only, soft CE weighted 0.4 as in GeoSeg's UnetFormerLoss),
# trained with the paper's protocol. CT variants: unetformer_ct_potsdam.py
# (CL), unetformer_ct-infonce_potsdam.py (InfoNCE).
_base_ = [
    '../_base_/schedules/ct_potsdam_50e.py',
    '../_base_/models/ct_swin_tiny.py',
]
# Optional local MMSeg-format Swin-T checkpoint; None: random init.
pretrained = None
norm_cfg = dict(type='SyncBN', requires_grad=True)
decoder_channels = 64  # UNetFormer's decode_channels
model = dict(
    type='EncoderDecoder',
    data_preprocessor=_base_.data_preprocessor,
    backbone=dict(
        **_base_.swin_backbone,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)
        if pretrained else None),
    decode_head=dict(
        type='UNetFormerHead',
        in_channels=_base_.swin_channels,
        in_index=[0, 1, 2, 3],
        channels=decoder_channels,
        num_heads=8,
        window_size=8,
        dropout_ratio=0.1,
        num_classes=_base_.num_classes,
        norm_cfg=norm_cfg,
        loss_decode=_base_.seg_loss),
    auxiliary_head=dict(
        type='UNetFormerAuxHead',
        in_channels=_base_.swin_channels,
        in_index=[0, 1, 2, 3],
        channels=decoder_channels,
        dropout_ratio=0.1,
        num_classes=_base_.num_classes,
        norm_cfg=norm_cfg,
        loss_decode=_base_.aux_seg_loss),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
