# What every ADCLR pretraining config in configs/adclr shares: a folder of
# unlabelled images (searched recursively), DINO's two global views and
# ADCLR's query crops at 224 px, the ADCLR model without its sizes, DINO's
# AdamW and DINO's schedule hook without its durations.
#
# mmengine evaluates this file on its own: the pipelines and the dataloader
# below are built with the sizes set here. A config that changes view_size,
# query_size or num_queries rebuilds what depends on them (see
# adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py).
_base_ = ['mmpretrain::_base_/default_runtime.py']

data_root = 'data/unlabelled'
image_suffixes = ('.jpg', '.jpeg', '.png', '.tif', '.tiff')
view_size = 224  # global views (px)
# 16 = the patch size: one token per query (our choice); 96 = the authors'
# code, 36 tokens per query, read out as their mean
query_size = 16
num_queries = 4  # the authors' code's default (its README run: 1)


# DINO's two global views: flip, colour jitter p0.8, grey p0.2, blur p1.0 /
# p0.1, solarize p0 / p0.2, crop scale (0.25, 1) as DINO's ViT-S run.
def global_view(blur_prob, solarize_prob):
    return [
        dict(type='RandomResizedCrop', scale=view_size,
             crop_ratio_range=(0.25, 1.0), interpolation='bicubic',
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


global_view_1 = global_view(1.0, 0.0)
global_view_2 = global_view(0.1, 0.2)
# Query crops: taken from the raw image (MultiView restarts every pipeline
# from it), one set per image shared by both global views; crop scale
# (0.05, 0.25) and no flip as the authors' code. Our choice: the global
# views' jitter, grey and blur, each at p0.5 (the authors' code: jitter
# p0.8, grey p0.2, blur p0.5).
query_view = [
    dict(type='RandomResizedCrop', scale=query_size,
         crop_ratio_range=(0.05, 0.25), interpolation='bicubic',
         backend='pillow'),
] + [dict(transform, prob=0.5) for transform in global_view_1[2:5]]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # order: the 2 global views, then the query crops
    dict(type='MultiView', num_views=[1, 1, num_queries],
         transforms=[global_view_1, global_view_2, query_view]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='CustomDataset', data_root=data_root, with_label=False,
                 extensions=image_suffixes, pipeline=train_pipeline))

model = dict(
    type='ct_mmseg.ADCLR',
    num_queries=num_queries,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(
        type='ct_mmseg.ADCLRViT', img_size=view_size, patch_size=16,
        drop_path_rate=0.1, out_type='featmap'),
    # the projection MLP (DINO's head); its sizes are set per config
    neck=dict(type='ct_mmseg.DINONeck'),
    # the losses: DINO's [CLS] term and ADCLR's query term, own centres
    head=dict(
        type='ct_mmseg.ADCLRHead',
        loss_cls=dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                      center_momentum=0.9),
        loss_query=dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                        center_momentum=0.9),
        query_loss_weight=1.0),
    teacher_momentum_end=1.0)

# teacher temperature 0.04 -> 0.07 (DINO); each config sets the durations
custom_hooks = [
    dict(type='ct_mmseg.DINOScheduleHook', warmup_teacher_temp=0.04,
         teacher_temp=0.07),
]

# DINO's optimiser: AdamW, no decay on biases and norms, gradient clip 3.0
# (on the global norm); each config adds its schedules (weight decay
# 0.04 -> 0.4 on a cosine, linear warm-up, cosine LR).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999),
                   weight_decay=0.04),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
randomness = dict(seed=0)
