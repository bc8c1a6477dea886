# DCSwin baseline (paper Table 1, row "DCSwin (Baseline)") on ISPRS Potsdam:
# MMSeg's Swin-T + the DCSwin decoder (ct_mmseg's DCSwinHead), trained with
# the paper's protocol (configs/_base_/schedules/ct_potsdam_50e.py). The CT
# variants are this file + the CT fragment and nothing else:
# dcswin_ct_potsdam.py (CL), dcswin_ct-infonce_potsdam.py (InfoNCE).
_base_ = [
    '../_base_/schedules/ct_potsdam_50e.py',
    '../_base_/models/ct_swin_tiny.py',
]
# Optional ImageNet weights for the backbone: a LOCAL path (nothing is
# downloaded), an MMSeg-format Swin-T checkpoint, e.g. the one made by
# <mmseg>/tools/model_converters/swin2mmseg.py. None: random init, as in the
# authors' runs. Also inherited by the CT variants; see docs/potsdam.md.
pretrained = None
norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN on a single GPU/CPU
model = dict(
    type='EncoderDecoder',
    data_preprocessor=_base_.data_preprocessor,
    backbone=dict(
        **_base_.swin_backbone,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)
        if pretrained else None),
    decode_head=dict(
        type='DCSwinHead',
        in_channels=_base_.swin_channels,
        in_index=[0, 1, 2, 3],
        num_classes=_base_.num_classes,
        dilations=(6, 12),
        dropout_ratio=0.05,
        norm_cfg=norm_cfg,
        align_corners=True,  # DCSwin's x4 UpsamplingBilinear2d
        loss_decode=_base_.seg_loss),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
