# ISPRS Vaihingen for the CT configs (configs/ct/*_vaihingen.py), on MMSeg's
# own data path:
#   python <mmseg>/tools/dataset_converters/vaihingen.py /path/to/zips \
#       -o data/vaihingen
# (zips: ISPRS_semantic_labeling_Vaihingen.zip and
# ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip), read
# by MMSeg's ISPRSDataset. The converter puts the 16 training areas into
# `train` and the 17 test areas into `val`; as for Potsdam, `val` is both
# the val and the test split (docs/remote_sensing.md).
#
# Only `vaihingen_*` names: this file sits beside a Potsdam model config
# (e.g. ../../ct/dcswin_potsdam.py) as a sibling base, and mmengine refuses a
# key that two sibling bases both define. The model config picks the values
# up through `_base_.vaihingen_*` and replaces its Potsdam data with them.
# The datasets below are exactly those of MMSeg's
# _base_/datasets/vaihingen.py (tests/configs/test_rs_configs.py compares
# them).
vaihingen_dataset_type = 'ISPRSDataset'
vaihingen_data_root = 'data/vaihingen'
vaihingen_crop_size = (512, 512)
# 6 classes (ISPRSDataset): impervious_surface, building, low_vegetation,
# tree, car, clutter; label 0 (boundary/black) is ignored (reduce_zero_label)
vaihingen_num_classes = 6
# Crops MMSeg's converter writes with its defaults (clip 512, stride 256):
# 344 train, 398 val (MMSeg's dataset preparation guide).
vaihingen_num_train_crops = 344
vaihingen_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(512, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=vaihingen_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
vaihingen_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
vaihingen_train_dataset = dict(
    type=vaihingen_dataset_type,
    data_root=vaihingen_data_root,
    data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
    pipeline=vaihingen_train_pipeline)
vaihingen_test_dataset = dict(
    type=vaihingen_dataset_type,
    data_root=vaihingen_data_root,
    data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
    pipeline=vaihingen_test_pipeline)
# GeoSeg reports the Vaihingen mIoU over the 5 classes without clutter, as
# for Potsdam: PerClassIoUMetric adds that mean to MMSeg's mIoU.
vaihingen_evaluator = dict(
    type='PerClassIoUMetric', iou_metrics=['mIoU'], mean_exclude=['clutter'])
