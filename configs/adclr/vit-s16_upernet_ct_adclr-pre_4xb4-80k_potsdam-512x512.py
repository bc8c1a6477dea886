# CT fine-tuning of an ADCLR-pretrained ViT-S/16 on ISPRS Potsdam: MMSeg's
# own ViT + UPerNet (as its vit_deit-s16 configs: no neck) assembled from
# MMSeg's _base_ files, plus the CT fragment (_base_/vit_upernet_ct.py).
#
# The backbone comes from an ADCLR checkpoint converted to MMSeg's names:
#   python tools/adclr_to_mmseg.py work_dirs/adclr_vit-s16/epoch_100.pth \
#       work_dirs/adclr_vit-s16/vit-s16_mmseg.pth
_base_ = [
    './_base_/vit_upernet_ct.py',
    'mmseg::_base_/datasets/potsdam.py',
]
adclr_checkpoint = 'work_dirs/adclr_vit-s16/vit-s16_mmseg.pth'
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=adclr_checkpoint,
    backbone=dict(img_size=crop_size, embed_dims=384, num_layers=12,
                  num_heads=6),
    decode_head=dict(num_classes=6, in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(num_classes=6, in_channels=384))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000,
         by_epoch=False)
]
