# CT fine-tuning of an ADCLR-pretrained ViT-S/16 on ISPRS Potsdam: MMSeg's
# own ViT + UPerNet (as its vit_deit-s16 configs: no neck) assembled from
# MMSeg's _base_ files, plus the CT fragment.
#
# The backbone comes from an ADCLR checkpoint converted to MMSeg's names:
#   python tools/adclr_to_mmseg.py work_dirs/adclr_vit-s16/epoch_100.pth \
#       work_dirs/adclr_vit-s16/vit-s16_mmseg.pth
# CheckPretrainedBackboneHook stops the run unless every backbone tensor was
# loaded (MMSeg's ViT itself loads non-strictly and would go on silently).
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py',
    'mmseg::_base_/datasets/potsdam.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/contrastive_transformer.py',
]
adclr_checkpoint = 'work_dirs/adclr_vit-s16/vit-s16_mmseg.pth'
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=adclr_checkpoint,
    backbone=dict(
        img_size=crop_size, embed_dims=384, num_layers=12, num_heads=6,
        mlp_ratio=4, drop_path_rate=0.1,
        # mmpretrain's ViT has both; MMSeg's defaults (False) would leave
        # two pretrained tensors unused
        patch_bias=True, final_norm=True),
    neck=None,
    decode_head=dict(num_classes=6, in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(num_classes=6, in_channels=384))
custom_hooks = [
    dict(type='ct_mmseg.ContrastiveTransformerHook'),
    dict(type='ct_mmseg.CTCheckpointHook'),
    dict(type='ct_mmseg.CheckPretrainedBackboneHook'),
]
# MMSeg's ViT recipe: AdamW, no decay on position embedding, cls token, norms
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000,
         by_epoch=False)
]
