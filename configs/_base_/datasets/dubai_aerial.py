# The Dubai aerial imagery set (Humans in the Loop, CC0; 8 tiles, 5 classes)
# after ct_mmseg's converter:
#   python tools/dataset_converters/dubai_aerial.py \
#       "/path/to/Semantic segmentation dataset" -o data/dubai_aerial
# (docs/dubai_aerial.md). Whole tiles per split: train 1, 4, 5, 6, 7 /
# val 2 / test 3, 8 by default.
#
# A dataset base like MMSeg's own (_base_/datasets/potsdam.py): list it
# beside a model, a schedule and default_runtime.py. It defines no
# data_preprocessor (model bases do: set its size to crop_size) and no
# custom_imports (sibling bases may): DubaiAerialDataset is registered by
# importing ct_mmseg, so the final config needs
#   custom_imports = dict(imports=['ct_mmseg'], allow_failed_imports=False)
# unless it is a CT config (the fragment's runner and hook import ct_mmseg).
#
# Crop size: `crop_size` is the RandomCrop step, train_pipeline[3]; change
# it here in a copy of this file, or from the command line with
#   --cfg-options "train_dataloader.dataset.pipeline.3.crop_size=(256,256)"
dataset_type = 'DubaiAerialDataset'
data_root = 'data/dubai_aerial'
# Facts of the converted set, for schedules that count epochs.
dubai_clip_size = 512  # the converter's default --clip_size
dubai_num_train_crops = 891  # default split, clip 512, stride 256
num_classes = 5  # building, land, road, vegetation, water (255: ignored)
crop_size = (512, 512)
# LoadAnnotations takes reduce_zero_label from the dataset (False: label 0
# is building); setting it here too only raises MMSeg's deprecation warning.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(dubai_clip_size, dubai_clip_size),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(dubai_clip_size, dubai_clip_size),
         keep_ratio=True),
    # annotations after Resize: the metric compares with the original mask
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='Resize', scale_factor=r, keep_ratio=True)
            for r in img_ratios
        ],
                    [
                        dict(type='RandomFlip', prob=0.,
                             direction='horizontal'),
                        dict(type='RandomFlip', prob=1.,
                             direction='horizontal')
                    ], [dict(type='LoadAnnotations')],
                    [dict(type='PackSegInputs')]])
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/test',
                         seg_map_path='ann_dir/test'),
        pipeline=test_pipeline))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
