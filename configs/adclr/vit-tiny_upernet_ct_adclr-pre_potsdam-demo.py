# CPU-sized handoff: the tiny ADCLR ViT (adclr_vit-tiny-p16_*.py: width 96,
# 4 layers, 3 heads) + UPerNet + CT (_base_/vit-tiny_upernet_ct.py) on the
# built-in demo Potsdam.
#   python tools/adclr_to_mmseg.py work_dirs/adclr_tiny/iter_300.pth \
#       work_dirs/adclr_tiny/vit-tiny_mmseg.pth
#   python <mmseg>/.mim/tools/train.py THIS_CONFIG \
#       --cfg-options model.pretrained=work_dirs/adclr_tiny/vit-tiny_mmseg.pth
# For training from scratch (the comparison), use
# vit-tiny_upernet_ct_scratch_potsdam-demo.py.
_base_ = [
    './_base_/vit-tiny_upernet_ct.py',
    'mmseg::_base_/datasets/potsdam.py',
    '../_base_/datasets/potsdam_demo.py',
]
adclr_checkpoint = 'work_dirs/adclr_tiny/vit-tiny_mmseg.pth'
data_root = _base_.demo_data_root
crop_size = _base_.demo_crop_size
max_iters = 200
val_interval = 100
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=adclr_checkpoint,
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=6),
    auxiliary_head=dict(num_classes=6))
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_base_.demo_train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_base_.demo_test_pipeline))
test_dataloader = val_dataloader
# the base's schedule at max_iters = 200
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=max_iters // 10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=max_iters // 10,
         end=max_iters, by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2))
