# ADCLR on a tiny ViT that pretrains on 2 CPU cores in minutes, on any folder
# of unlabelled images (searched recursively):
#
#   mim train mmpretrain configs/adclr/adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/tiles
#
# The checkpoint initialises the ViT of an MMSeg config after
# `python tools/adclr_to_mmseg.py work_dirs/.../iter_300.pth vit.pth`
# (docs/adclr.md). Scoped names (`ct_mmseg.*`) make MMEngine import ct_mmseg
# by itself: no custom_imports.
_base_ = ['mmpretrain::_base_/default_runtime.py']

data_root = 'data/unlabelled'
image_suffixes = ('.jpg', '.jpeg', '.png', '.tif', '.tiff')
view_size = 64  # global views (px)
local_size = 32  # local views, when num_local_views > 0
query_size = 16  # = the patch size: one token per query (ADCLR's QP_i)
num_queries = 4
num_local_views = 0  # DINO's multi-crop off
max_iters = 300
batch_size = 16

# DINO's two global views (flip, colour jitter p0.8, grey p0.2, blur p1.0 /
# p0.1, solarize p0 / p0.2), at the crop scale of DINO's ViT-S run.
def global_view(blur_prob, solarize_prob, size=view_size,  # noqa: E302
                crop_ratio_range=(0.25, 1.0)):
    return [
        dict(type='RandomResizedCrop', scale=size,
             crop_ratio_range=crop_ratio_range, interpolation='bicubic',
             backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomApply', prob=0.8, transforms=[dict(
            type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2,
            hue=0.1)]),
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
             channel_weights=(0.114, 0.587, 0.2989)),
        dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
             magnitude_std='inf', prob=blur_prob),
        dict(type='Solarize', thr=128, prob=solarize_prob),
    ]


# Query crops: taken from the raw image (MultiView restarts every pipeline
# from it), one set per image shared by both global views; the ADCLR code's
# recipe: scale (0.05, 0.25), no flip, jitter / grey / blur at p0.5.
query_view = [
    dict(type='RandomResizedCrop', scale=query_size,
         crop_ratio_range=(0.05, 0.25), interpolation='bicubic',
         backend='pillow'),
    dict(type='RandomApply', prob=0.5, transforms=[dict(
        type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.2,
        hue=0.1)]),
    dict(type='RandomGrayscale', prob=0.5, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=0.5),
]
global_view_1 = global_view(1.0, 0.0)
global_view_2 = global_view(0.1, 0.2)
local_view = global_view(0.5, 0.0, size=local_size,
                         crop_ratio_range=(0.05, 0.25))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # order: 2 global views, the local views, the query crops
    dict(type='MultiView',
         num_views=[1, 1, num_local_views, num_queries],
         transforms=[global_view_1, global_view_2, local_view, query_view]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root=data_root, with_label=False,
                 extensions=image_suffixes, pipeline=train_pipeline))

model = dict(
    type='ct_mmseg.ADCLR',
    num_queries=num_queries,
    num_local_views=num_local_views,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(
        type='ct_mmseg.ADCLRViT',
        arch=dict(embed_dims=96, num_layers=4, num_heads=3,
                  feedforward_channels=384),
        img_size=view_size, patch_size=16, drop_path_rate=0.1,
        out_type='featmap', out_indices=(0, 1, 2, 3)),
    head=dict(type='ct_mmseg.DINOHead', out_channels=1024,
              hidden_channels=256, bottleneck_channels=64,
              norm_last_layer=True),
    loss_cls=dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                  center_momentum=0.9),
    loss_query=dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                    center_momentum=0.9),
    query_loss_weight=1.0,
    # a short run: the teacher follows faster than DINO's 0.996
    teacher_momentum=0.99, teacher_momentum_end=1.0)

custom_hooks = [
    dict(type='ct_mmseg.DINOScheduleHook', warmup_teacher_temp=0.04,
         teacher_temp=0.07, warmup_iters=max_iters // 3,
         freeze_last_layer_epochs=1),
]

# DINO's optimiser: AdamW, no decay on biases and norms, weight decay
# 0.04 -> 0.4 on a cosine, gradient clip 3.0; linear warm-up, cosine LR.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                   weight_decay=0.04),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=max_iters // 10),
    dict(type='CosineAnnealingLR', T_max=max_iters - max_iters // 10,
         eta_min=1e-6, by_epoch=False, begin=max_iters // 10, end=max_iters),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min=0.4, T_max=max_iters, by_epoch=False, begin=0,
         end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
