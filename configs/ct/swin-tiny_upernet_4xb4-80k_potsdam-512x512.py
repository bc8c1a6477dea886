# Baseline: MMSeg's Swin-T + UPerNet on ISPRS Potsdam (RGB), assembled from
# MMSeg's own _base_ files exactly as MMSeg's Potsdam configs are. Data:
# `python tools/dataset_converters/potsdam.py /path/to/zips -o data/potsdam`
# (MMSeg's converter), read by MMSeg's PotsdamDataset. No CT here: the CT
# config is this file + the CT fragment, nothing else.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/potsdam.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
# Optional ImageNet weights: a local path (nothing is downloaded), e.g.
# --cfg-options model.backbone.init_cfg.checkpoint=/path/swin_tiny.pth
pretrained = None
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)
                  if pretrained else None),
    decode_head=dict(num_classes=6),
    auxiliary_head=dict(num_classes=6))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000,
         by_epoch=False)
]
