# DCPoolFormer baseline (paper Table 1, row "DCPoolFormer (Baseline)") on
# ISPRS Potsdam: mmpretrain's PoolFormer-S12 + the DCSwin decoder
# (ct_mmseg's DCSwinHead), trained with the paper's protocol. CT variants:
# dcpoolformer_ct_potsdam.py (CL), dcpoolformer_ct-infonce_potsdam.py.
_base_ = ['../_base_/schedules/ct_potsdam_50e.py']
# mmpretrain's backbones register on import; the protocol's imports
# (ct_mmseg, its metric) are kept. A child may override its base's
# custom_imports; two sibling bases may not both define it, so it is set
# here and not in a separate model base.
custom_imports = dict(
    imports=['mmpretrain.models', *_base_.custom_imports.imports],
    allow_failed_imports=False)
# Optional ImageNet weights: a LOCAL mmpretrain PoolFormer-S12 checkpoint
# (keys 'backbone.*'). None: random init, as in the authors' runs.
pretrained = None
norm_cfg = dict(type='SyncBN', requires_grad=True)
poolformer_channels = [64, 128, 320, 512]  # PoolFormer-S12 stage widths
model = dict(
    type='EncoderDecoder',
    data_preprocessor=_base_.data_preprocessor,
    backbone=dict(
        type='mmpretrain.PoolFormer',
        arch='s12',
        # network indices 0, 2, 4, 6 are the four stages (1, 3, 5 are the
        # down-sampling embeddings): strides 4, 8, 16, 32
        out_indices=(0, 2, 4, 6),
        drop_path_rate=0.,
        # mmpretrain's default frozen_stages=0 freezes the stem; with random
        # init that would freeze noise, so nothing is frozen.
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained,
                      prefix='backbone.') if pretrained else None),
    decode_head=dict(
        type='DCSwinHead',
        in_channels=poolformer_channels,
        in_index=[0, 1, 2, 3],
        num_classes=_base_.num_classes,
        dilations=(6, 12),
        dropout_ratio=0.05,
        norm_cfg=norm_cfg,
        align_corners=True,
        loss_decode=_base_.seg_loss),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
