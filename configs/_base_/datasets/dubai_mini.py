# The Dubai subset shipped in ct_mmseg/datasets/dubai_mini/ (11 images of
# the Dubai aerial set, CC0, halved; its README.md says which), converted by
# ct_mmseg's own converter as tools/run_demo.sh does:
#   python tools/dataset_converters/dubai_aerial.py \
#       ct_mmseg/datasets/dubai_mini -o data/dubai_mini \
#       --clip_size 384 --stride_size 192 \
#       --train_tiles 1 4 5 6 7 --val_tiles 2 --test_tiles 8
# and read by DubaiAerialDataset (registered by importing ct_mmseg).
# Only `dubai_mini_*` names, like potsdam_demo.py: they clash with no stock
# base, so a demo config lists this file beside its model config and picks
# what it needs via `_base_.`. Val and test are the held-out tiles' whole
# images (the converter's val_whole / test_whole): every labelled pixel is
# scored once, and the predictions have the images' size.
dubai_mini_data_root = 'data/dubai_mini'
dubai_mini_crop_size = (256, 256)
dubai_mini_num_classes = 5  # building, land, road, vegetation, water
dubai_mini_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # the converted train crops are 384 px: scale by 0.75-1.5 (288-576 px,
    # never smaller than a crop), then take a random 256 px crop
    dict(type='RandomResize', scale=(384, 384), ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=dubai_mini_crop_size,
         cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
dubai_mini_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
dubai_mini_train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='DubaiAerialDataset',
        data_root=dubai_mini_data_root,
        data_prefix=dict(
            img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=dubai_mini_train_pipeline))


def dubai_mini_eval_dataloader(folder):
    """The loader of one held-out split, whole images one at a time (a
    function: MMEngine keeps only its results in the config)."""
    return dict(
        batch_size=1,
        num_workers=1,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='DubaiAerialDataset',
            data_root=dubai_mini_data_root,
            data_prefix=dict(
                img_path=f'img_dir/{folder}',
                seg_map_path=f'ann_dir/{folder}'),
            pipeline=dubai_mini_test_pipeline))


dubai_mini_val_dataloader = dubai_mini_eval_dataloader('val_whole')
dubai_mini_test_dataloader = dubai_mini_eval_dataloader('test_whole')
