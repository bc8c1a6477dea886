# The main job's baseline (tools/run_demo.sh): the narrow Swin + UPerNet of
# the Potsdam demo (swin-tiny_upernet_potsdam-demo.py: model, optimiser,
# runtime) on real imagery, the Dubai subset shipped in
# ct_mmseg/datasets/dubai_mini/ (../../_base_/datasets/dubai_mini.py says
# how it is converted). Trained from random initialisation for a few
# minutes on a CPU. Its CT twin is swin-tiny_upernet_ct_dubai-demo.py.
_base_ = [
    './swin-tiny_upernet_potsdam-demo.py',
    '../../_base_/datasets/dubai_mini.py',
]
# DubaiAerialDataset and PerClassIoUMetric are registered by ct_mmseg
custom_imports = dict(imports=['ct_mmseg'], allow_failed_imports=False)
dataset_type = 'DubaiAerialDataset'
data_root = _base_.dubai_mini_data_root
crop_size = _base_.dubai_mini_crop_size
num_classes = _base_.dubai_mini_num_classes
max_iters = 200
model = dict(
    # whole held-out images at test time, padded to a multiple of the
    # coarsest stride (the padding is cut off the prediction)
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size_divisor=32)),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
train_pipeline = _base_.dubai_mini_train_pipeline
test_pipeline = _base_.dubai_mini_test_pipeline
train_dataloader = _base_.dubai_mini_train_dataloader
val_dataloader = _base_.dubai_mini_val_dataloader
test_dataloader = _base_.dubai_mini_test_dataloader
# tools/run_demo.sh sets results_file (the per-class IoU as JSON) and, with
# tools/test.py --out, the folder of the predicted label PNGs
test_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=20, end=max_iters,
         by_epoch=False)
]
# validate (on the val tile's whole image) and save once, at the end
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
