# CPU-sized CT fine-tuning on the Dubai aerial set from a tiny ADCLR
# checkpoint (adclr_vit-tiny-p16_1xb16-300i_dubai-train-tiles-64px.py:
# width 96, 4 layers, 3 heads): MMSeg's ViT + UPerNet + the CT fragment
# (_base_/vit-tiny_upernet_ct.py), on the converter's 512 px crops seen at
# 128 px (1/4 scale).
#   python tools/dataset_converters/dubai_aerial.py ../shared/data/dubai_aerial \
#       -o data/dubai_aerial
#   python tools/adclr_to_mmseg.py work_dirs/adclr_evidence/adclr_dubai/iter_300.pth \
#       work_dirs/adclr_evidence/adclr_dubai/vit_mmseg.pth \
#       --check-config configs/adclr/vit-tiny_upernet_ct_adclr-pre_dubai-128px.py
#   python <mmseg>/.mim/tools/train.py THIS_CONFIG \
#       --cfg-options model.pretrained=work_dirs/adclr_evidence/adclr_dubai/vit_mmseg.pth
# From scratch: vit-tiny_upernet_ct_scratch_dubai-128px.py. Validation runs
# on the *test* tiles (3, 8) at the end: this is an evidence config.
_base_ = [
    './_base_/vit-tiny_upernet_ct.py',
    '../_base_/datasets/dubai_aerial.py',
]
adclr_checkpoint = 'work_dirs/adclr_evidence/adclr_dubai/vit_mmseg.pth'
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=adclr_checkpoint,
    backbone=dict(img_size=crop_size),
    decode_head=dict(num_classes=_base_.num_classes),
    auxiliary_head=dict(num_classes=_base_.num_classes))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=8, num_workers=1, persistent_workers=True,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1, persistent_workers=False,
    dataset=dict(data_prefix=dict(img_path='img_dir/test',
                                  seg_map_path='ann_dir/test'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
