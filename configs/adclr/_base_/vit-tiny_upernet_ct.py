# The tiny ADCLR ViT (adclr_vit-tiny-p16_*.py: width 96, 4 layers, 3 heads)
# + UPerNet + CT, sized for a CPU: a light UPerNet with BN, AdamW 3e-4,
# 400 iterations with a linear warm-up and a poly decay. A config that
# changes max_iters rebuilds the schedule (vit-tiny_upernet_ct_adclr-pre_
# potsdam-demo.py does).
_base_ = ['./vit_upernet_ct.py']
max_iters = 400
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    backbone=dict(embed_dims=96, num_layers=4, num_heads=3,
                  out_indices=(0, 1, 2, 3)),
    decode_head=dict(in_channels=[96, 96, 96, 96], channels=64,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=96, channels=32, norm_cfg=norm_cfg))
optim_wrapper = dict(optimizer=dict(lr=3e-4))
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
