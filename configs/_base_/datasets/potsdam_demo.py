# The built-in demo dataset (synthetic ISPRS Potsdam, written and converted
# with MMSeg's own converter by tools/prepare_demo_data.py), sized for a CPU.
# Only `demo_*` names: they clash with no stock base, so a demo config lists
# this file beside its model config and picks what it needs via `_base_.`.
demo_data_root = 'data/potsdam_demo'
demo_crop_size = (256, 256)
demo_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    # the demo tiles are 512 px: scale down by up to 2, then crop
    dict(type='RandomResize', scale=(512, 512), ratio_range=(0.5, 1.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=demo_crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
demo_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=demo_crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
