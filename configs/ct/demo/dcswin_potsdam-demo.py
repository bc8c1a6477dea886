# DCSwin (baseline) on the built-in demo data, sized for a CPU or a quick GPU
# check: the paper's DCSwin config (../dcswin_potsdam.py) with a narrow Swin,
# 256 px crops and a short run. Its CT twin is dcswin_ct_potsdam-demo.py.
_base_ = ['../dcswin_potsdam.py', '../../_base_/datasets/potsdam_demo.py']
data_root = _base_.demo_data_root
crop_size = _base_.demo_crop_size
max_iters = 300
val_interval = 100
embed_dims = 48  # narrow Swin: same four stages and strides as Swin-T
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(embed_dims=embed_dims, depths=[1, 1, 2, 1],
                  num_heads=[2, 4, 8, 16], drop_path_rate=0.1),
    decode_head=dict(in_channels=[embed_dims * 2**i for i in range(4)],
                     norm_cfg=dict(type='BN', requires_grad=True)))
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_base_.demo_train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=_base_.demo_test_pipeline))
test_dataloader = val_dataloader
# The protocol's constant lr 8e-5 belongs to 5400 steps of batch 32; a short
# run from scratch needs a larger one (as the Swin demo).
optim_wrapper = dict(optimizer=dict(lr=0.0006))
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=val_interval))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
