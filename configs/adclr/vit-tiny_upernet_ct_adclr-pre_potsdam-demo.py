# CPU-sized handoff: the tiny ADCLR ViT (adclr_vit-tiny-p16_*.py: width 96,
# 4 layers, 3 heads) + UPerNet + CT on the built-in demo Potsdam.
#   python tools/adclr_to_mmseg.py work_dirs/adclr_tiny/iter_300.pth \
#       work_dirs/adclr_tiny/vit-tiny_mmseg.pth
#   python <mmseg>/.mim/tools/train.py THIS_CONFIG \
#       --cfg-options model.pretrained=work_dirs/adclr_tiny/vit-tiny_mmseg.pth
# For training from scratch (the comparison), use
# vit-tiny_upernet_ct_scratch_potsdam-demo.py.
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py',
    'mmseg::_base_/datasets/potsdam.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/datasets/potsdam_demo.py',
    '../_base_/contrastive_transformer.py',
]
adclr_checkpoint = 'work_dirs/adclr_tiny/vit-tiny_mmseg.pth'
data_root = _base_.demo_data_root
crop_size = _base_.demo_crop_size
max_iters = 200
val_interval = 100
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=adclr_checkpoint,
    backbone=dict(
        img_size=crop_size, embed_dims=96, num_layers=4, num_heads=3,
        mlp_ratio=4, out_indices=(0, 1, 2, 3), drop_path_rate=0.1,
        patch_bias=True, final_norm=True),
    neck=None,
    decode_head=dict(num_classes=6, in_channels=[96, 96, 96, 96],
                     channels=64, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=6, in_channels=96, channels=32,
                        norm_cfg=norm_cfg))
custom_hooks = [
    dict(type='ct_mmseg.ContrastiveTransformerHook'),
    dict(type='ct_mmseg.CheckPretrainedBackboneHook'),
]
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_base_.demo_train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_base_.demo_test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=20, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=val_interval, max_keep_ckpts=2))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
