# LoveDA for the CT configs (configs/ct/*_loveda.py), on MMSeg's own data
# path:
#   python <mmseg>/tools/dataset_converters/loveda.py /path/to/zips \
#       -o data/loveDA
# (zips: Train.zip, Val.zip, Test.zip), read by MMSeg's LoveDADataset. The
# converter only unzips: 1024 x 1024 images, 2522 train, 1669 val and 1796
# test (the test masks are withheld for the LoveDA server), so `val` is the
# evaluation split, as in MMSeg's LoveDA configs (docs/remote_sensing.md).
#
# Only `loveda_*` names: this file sits beside a Potsdam model config (e.g.
# ../../ct/dcswin_potsdam.py) as a sibling base, and mmengine refuses a key
# that two sibling bases both define. The model config picks the values up
# through `_base_.loveda_*` and replaces its Potsdam data with them. The
# datasets below are exactly those of MMSeg's _base_/datasets/loveda.py
# (tests/configs/test_rs_configs.py compares them).
loveda_dataset_type = 'LoveDADataset'
loveda_data_root = 'data/loveDA'
loveda_crop_size = (512, 512)
# 7 classes (LoveDADataset): background, building, road, water, barren,
# forest, agricultural; label 0 (no data) is ignored (reduce_zero_label)
loveda_num_classes = 7
loveda_num_train_images = 2522  # the LoveDA release's train split
loveda_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=loveda_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
loveda_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
loveda_train_dataset = dict(
    type=loveda_dataset_type,
    data_root=loveda_data_root,
    data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
    pipeline=loveda_train_pipeline)
loveda_test_dataset = dict(
    type=loveda_dataset_type,
    data_root=loveda_data_root,
    data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
    pipeline=loveda_test_pipeline)
# LoveDA's mIoU is over all 7 classes (background included), as GeoSeg and
# the LoveDA benchmark report it. mean_exclude is set (empty) on purpose: the
# evaluator is merged into the Potsdam one, whose ['clutter'] would survive.
loveda_evaluator = dict(
    type='PerClassIoUMetric', iou_metrics=['mIoU'], mean_exclude=[])
