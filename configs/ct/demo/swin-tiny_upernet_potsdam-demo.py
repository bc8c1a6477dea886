# The demo: the Potsdam baseline shrunk to run on a CPU in a few minutes, on
# the built-in synthetic Potsdam (tools/prepare_demo_data.py writes it in the
# raw ISPRS format and converts it with MMSeg's own converter).
_base_ = [
    '../swin-tiny_upernet_4xb4-80k_potsdam-512x512.py',
    '../../_base_/datasets/potsdam_demo.py',
]
data_root = _base_.demo_data_root
crop_size = _base_.demo_crop_size
max_iters = 200
val_interval = 100
# A narrow Swin (same four stages and strides as Swin-T) keeps CPU time low.
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(embed_dims=48, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16],
                  drop_path_rate=0.1),
    decode_head=dict(in_channels=[48, 96, 192, 384], channels=128,
                     norm_cfg=dict(type='BN', requires_grad=True)),
    auxiliary_head=dict(in_channels=192, channels=64,
                        norm_cfg=dict(type='BN', requires_grad=True)))
train_pipeline = _base_.demo_train_pipeline
test_pipeline = _base_.demo_test_pipeline
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=0.0006))
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
