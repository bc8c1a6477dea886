# ADCLR with ViT-S/16 at 224 px, on a folder of unlabelled images (searched
# recursively). A GPU config: 8 GPUs x 64 images. Values: the ADCLR authors'
# ViT-S run (100 epochs, batch 512, AdamW 5e-4 x B/256, 10 warm-up epochs,
# weight decay 0.04 -> 0.4, clip 3.0, teacher temperature 0.04 -> 0.07 over
# 30 epochs, EMA 0.996 -> 1, K = 8192 with a trained last-layer gain) where
# the paper's own values could not be read (docs/adclr.md lists each choice).
#
#   mim train mmpretrain configs/adclr/adclr_vit-s16_8xb64-100e_unlabelled-224px.py \
#       --launcher pytorch --gpus 8 \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/tiles
_base_ = ['mmpretrain::_base_/default_runtime.py']

data_root = 'data/unlabelled'
image_suffixes = ('.jpg', '.jpeg', '.png', '.tif', '.tiff')
view_size = 224
# 16 = one token per query (ADCLR's QP_i, our default); 96 = the authors'
# code, 36 tokens per query, read out as their mean
query_size = 16
num_queries = 4  # the code's default (its README run: 1)
max_epochs = 100
warmup_epochs = 10
batch_size = 64  # per GPU


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
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1, num_queries],
         transforms=[global_view_1, global_view_2, query_view]),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
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
        type='ct_mmseg.ADCLRViT', arch='deit-small', img_size=view_size,
        patch_size=16, drop_path_rate=0.1, out_type='featmap',
        out_indices=(2, 5, 8, 11)),
    head=dict(type='ct_mmseg.DINOHead', out_channels=8192,
              hidden_channels=2048, bottleneck_channels=256,
              norm_last_layer=False),
    loss_cls=dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                  center_momentum=0.9),
    loss_query=dict(type='ct_mmseg.DINOLoss', student_temp=0.1,
                    center_momentum=0.9),
    query_loss_weight=1.0,
    teacher_momentum=0.996, teacher_momentum_end=1.0)

# the head's last layer gets no gradient in epoch 1 (DINOScheduleHook)
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)
custom_hooks = [
    dict(type='ct_mmseg.DINOScheduleHook', warmup_teacher_temp=0.04,
         teacher_temp=0.07, warmup_epochs=30, freeze_last_layer_epochs=1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=5e-4 * batch_size * 8 / 256,
                   betas=(0.9, 0.999), weight_decay=0.04),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=1e-6, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
         eta_min=0.4, T_max=max_epochs, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=512)
randomness = dict(seed=0)
