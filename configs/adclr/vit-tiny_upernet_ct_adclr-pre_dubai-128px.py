# CPU-sized CT fine-tuning on the Dubai aerial set from a tiny ADCLR
# checkpoint (adclr_vit-tiny-p16_1xb16-300i_dubai-train-tiles-64px.py:
# width 96, 4 layers, 3 heads): MMSeg's ViT + UPerNet + the CT fragment, on
# the converter's 512 px crops seen at 128 px (1/4 scale).
#   python tools/dataset_converters/dubai_aerial.py ../shared/data/dubai_aerial \
#       -o data/dubai_aerial
#   python tools/adclr_to_mmseg.py work_dirs/adclr_evidence/adclr_dubai/iter_300.pth \
#       work_dirs/adclr_evidence/adclr_dubai/vit_mmseg.pth \
#       --check-config configs/adclr/vit-tiny_upernet_ct_adclr-pre_dubai-128px.py
#   python <mmseg>/.mim/tools/train.py THIS_CONFIG \
#       --cfg-options model.pretrained=work_dirs/adclr_evidence/adclr_dubai/vit_mmseg.pth
# From scratch: vit-tiny_upernet_ct_scratch_dubai-128px.py. Validation runs
# on the *test* tiles (3, 8) at the end: this is an evidence config.
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py',
    '../_base_/datasets/dubai_aerial.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../_base_/contrastive_transformer.py',
]
adclr_checkpoint = 'work_dirs/adclr_evidence/adclr_dubai/vit_mmseg.pth'
crop_size = (128, 128)
max_iters = 400
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=adclr_checkpoint,
    backbone=dict(
        img_size=crop_size, embed_dims=96, num_layers=4, num_heads=3,
        mlp_ratio=4, out_indices=(0, 1, 2, 3), drop_path_rate=0.1,
        patch_bias=True, final_norm=True),
    neck=None,
    decode_head=dict(num_classes=_base_.num_classes,
                     in_channels=[96, 96, 96, 96], channels=64,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=_base_.num_classes, in_channels=96,
                        channels=32, norm_cfg=norm_cfg))
custom_hooks = [
    dict(type='ct_mmseg.ContrastiveTransformerHook'),
    dict(type='ct_mmseg.CTCheckpointHook'),
    dict(type='ct_mmseg.CheckPretrainedBackboneHook'),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(data_prefix=dict(img_path='img_dir/test',
                                  seg_map_path='ann_dir/test'),
                 pipeline=test_pipeline))
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
         end=max_iters // 10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=max_iters // 10,
         end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
