# ADCLR with ViT-S/16 at 224 px, on a folder of unlabelled images (searched
# recursively). A GPU config: 8 GPUs x 64 images. Not run here.
#
# The paper's settings could not be read. Most values are those of the
# authors' released code, which runs PQCL rather than ADCLR (its README's
# ViT-S run: 100 epochs, batch 512, AdamW 5e-4 x B/256, 10 warm-up epochs,
# weight decay 0.04 -> 0.4, clip 3.0, teacher temperature 0.04 -> 0.07 over
# 30 epochs, EMA 0.996 -> 1, K = 8192 with a trained last-layer gain; 4
# queries is the code's default, the README run uses 1). Our own choices:
# one 16 px token per query with no position embedding, the query-crop
# colour probabilities, DINO's asymmetric global views, a gradient clip on
# the global norm and AMP (the authors' code clips each parameter's
# gradient separately and trains in fp32 by default). docs/adclr.md lists
# each choice and where it comes from.
#
#   mim train mmpretrain configs/adclr/adclr_vit-s16_8xb64-100e_unlabelled-224px.py \
#       --launcher pytorch --gpus 8 \
#       --cfg-options train_dataloader.dataset.data_root=/path/to/tiles
_base_ = ['./_base_/adclr_pretrain_unlabelled.py']

max_epochs = 100
warmup_epochs = 10
batch_size = 64  # per GPU

train_dataloader = dict(batch_size=batch_size, num_workers=8,
                        drop_last=True)

model = dict(
    backbone=dict(arch='deit-small', out_indices=(2, 5, 8, 11)),
    neck=dict(out_channels=8192, hidden_channels=2048,
              bottleneck_channels=256, norm_last_layer=False),
    teacher_momentum=0.996)

# the neck's last layer gets no gradient in epoch 1 (DINOScheduleHook)
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)
custom_hooks = [
    dict(_base_.custom_hooks[0], warmup_epochs=30,
         freeze_last_layer_epochs=1),
]

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(lr=5e-4 * batch_size * 8 / 256))
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
