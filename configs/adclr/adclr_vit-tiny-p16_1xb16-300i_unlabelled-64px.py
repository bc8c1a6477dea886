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
_base_ = ['./_base_/adclr_pretrain_unlabelled.py']

# query_size (16 px: one token per query) and num_queries (4): the base's
view_size = 64  # global views (px)
local_size = 32  # local views, when num_local_views > 0
num_local_views = 0  # DINO's multi-crop off
max_iters = 300
batch_size = 16


def at_size(view, size, **crop):
    """``view`` with its first transform (the RandomResizedCrop) cut at
    ``size`` px."""
    return [dict(view[0], scale=size, **crop)] + list(view[1:])


# the base's views at this config's sizes; DINO's local view: blur p0.5, no
# solarize, crop scale (0.05, 0.25)
global_view_1 = at_size(_base_.global_view_1, view_size)
global_view_2 = at_size(_base_.global_view_2, view_size)
local_view = at_size(
    _base_.global_view_1[:4] + [dict(_base_.global_view_1[4], prob=0.5),
                                _base_.global_view_1[5]],
    local_size, crop_ratio_range=(0.05, 0.25))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # order: 2 global views, the local views, the query crops
    dict(type='MultiView',
         num_views=[1, 1, num_local_views, _base_.num_queries],
         transforms=[global_view_1, global_view_2, local_view,
                     _base_.query_view]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    sampler=dict(type='InfiniteSampler'),
    dataset=dict(pipeline=train_pipeline))

model = dict(
    num_local_views=num_local_views,
    backbone=dict(
        arch=dict(embed_dims=96, num_layers=4, num_heads=3,
                  feedforward_channels=384),
        img_size=view_size, out_indices=(0, 1, 2, 3)),
    neck=dict(out_channels=1024, hidden_channels=256, bottleneck_channels=64,
              norm_last_layer=True),
    # a short run: the teacher follows faster than DINO's 0.996
    teacher_momentum=0.99)

custom_hooks = [
    dict(_base_.custom_hooks[0], warmup_iters=max_iters // 3,
         freeze_last_layer_epochs=1),
]

# linear warm-up, cosine LR; weight decay 0.04 -> 0.4 on a cosine (DINO)
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
