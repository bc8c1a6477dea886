# The CPU study of docs/results.md, baseline arm: DCSwin (the paper's model)
# with a narrow Swin, trained FROM RANDOM INITIALISATION (no pretrained
# weights can be downloaded on these machines) on the real Dubai aerial set
# (ct_mmseg's converter, whole tiles per split: train 1,4,5,6,7 / val 2 /
# test 3,8), sized so that one run takes a few minutes on 2 CPU cores.
# The CT arms are this file + the CT fragment (+ one option each):
# dcswin_ct_dubai.py (CL), dcswin_ct-infonce_dubai.py,
# dcswin_ct-authors_dubai.py (the authors' code: random-half CL, clamp).
# Run them all with: python tools/run_study.py configs/study/dubai/study.json
_base_ = [
    '../../_base_/datasets/dubai_aerial.py',
    'mmseg::_base_/default_runtime.py',
    '../../_base_/models/ct_swin_tiny.py',
]
custom_imports = dict(imports=['ct_mmseg', 'ct_mmseg.evaluation'],
                      allow_failed_imports=False)
# Scale: the converted crops are 512 px; the study sees them at half
# resolution (about 0.6 m/px instead of 0.3) in 128 px crops. Val and test
# score the held-out tiles' whole images (the converter's val_whole /
# test_whole), halved the same way and segmented by sliding 256 px windows;
# the prediction is resized back, so every labelled pixel counts once.
crop_size = (128, 128)
study_scale = (256, 256)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=study_scale, ratio_range=(0.8, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=0.5, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
embed_dims = 32  # narrow Swin: Swin-T's four stages and strides, 1/3 wide
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
        seg_pad_val=255, size=crop_size,
        # whole images at test time: padded to a multiple of the coarsest
        # stride (the padding is cut off the prediction)
        test_cfg=dict(size_divisor=32)),
    backbone=dict(
        _base_.swin_backbone,
        embed_dims=embed_dims, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8],
        drop_path_rate=0.0),
    decode_head=dict(
        type='DCSwinHead',
        in_channels=[embed_dims * 2**i for i in range(4)],
        in_index=[0, 1, 2, 3],
        num_classes=5,
        dilations=(6, 12),
        dropout_ratio=0.05,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=True,
        # the paper's segmentation loss: soft CE (0.05) + dice (0.05), 1:1
        loss_decode=[
            dict(type='SoftCrossEntropyLoss', smooth_factor=0.05,
                 loss_weight=1.0, loss_name='loss_ce'),
            dict(type='SoftDiceLoss', smooth=0.05, loss_weight=1.0,
                 loss_name='loss_dice')]),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(256, 256), stride=(192, 192)))
max_iters = 400
val_interval = 50
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, data_prefix=dict(
        img_path='img_dir/val_whole', seg_map_path='ann_dir/val_whole')))
test_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(pipeline=test_pipeline, data_prefix=dict(
        img_path='img_dir/test_whole', seg_map_path='ann_dir/test_whole')))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'],
                      mean_exclude=[])
# AdamW as in the paper's protocol, with a larger lr for a short run from
# scratch (as the demo configs) and a warm-up + poly decay.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-4, betas=(0.9, 0.999),
                   weight_decay=0.01),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=40),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=40, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1, save_last=True),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)  # the study sets randomness.seed per run
