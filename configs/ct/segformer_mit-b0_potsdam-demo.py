# Baseline for docs/other_backbones.md: MMSeg's *stock* SegFormer MiT-B0
# config, adapted to the Potsdam demo data (synthetic, made by
# tools/prepare_demo_data.py) and to a short CPU run. No CT here: the CT
# config (segformer_mit-b0_ct_potsdam-demo.py) is this file + the CT
# fragment, nothing else. SegFormer is a backbone the CT paper did not use.
_base_ = [
    'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py',
    '../_base_/datasets/potsdam_demo.py',
]
data_root = _base_.demo_data_root
dataset_type = 'PotsdamDataset'
crop_size = _base_.demo_crop_size
max_iters = 200
val_interval = 100
model = dict(
    data_preprocessor=dict(size=crop_size),
    # The stock config downloads MiT-B0 ImageNet weights from an URL through
    # init_cfg. None trains from scratch and offline; to use the weights,
    # download them once and set
    # init_cfg=dict(type='Pretrained', checkpoint='/path/to/mit_b0.pth').
    backbone=dict(init_cfg=None),
    # 6 Potsdam classes. The stock SyncBN stays: MMEngine's runner turns it
    # into plain BN when training is not distributed (CPU, one GPU).
    decode_head=dict(num_classes=6))
train_pipeline = _base_.demo_train_pipeline
test_pipeline = _base_.demo_test_pipeline
# _delete_: replace the stock ADE20K dataset dicts whole, so no ADE20K key
# (folder names, dataset type) survives the merge.
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=False,
    dataset=dict(
        _delete_=True, type=dataset_type, data_root=data_root,
        data_prefix=dict(img_path='img_dir/train',
                         seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1, persistent_workers=False,
    dataset=dict(
        _delete_=True, type=dataset_type, data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The stock AdamW and its paramwise_cfg are kept, at 10x the stock rate for
# 200 iterations from scratch (as the Swin demo). Its custom key 'head'
# (lr x10) matches every parameter name containing "head": with CT, the
# projection heads (auxiliary_head.projectors.*) get the 10x rate too.
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
