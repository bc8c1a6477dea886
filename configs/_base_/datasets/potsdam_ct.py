# ISPRS Potsdam (RGB) as the CT paper uses it, on MMSeg's own data path:
#   python <mmseg>/tools/dataset_converters/potsdam.py /path/to/zips \
#       -o data/potsdam          # zips: 2_Ortho_RGB.zip + 5_Labels_all*.zip
# (see docs/potsdam.md), read by MMSeg's PotsdamDataset. The converter puts
# the 24 training tiles into `train` and the 14 standard test tiles into
# `val`; as in the paper (and the authors' code) the 14 test tiles are the
# evaluation set, so `val` serves as both val and test split here.
# Pipelines and loaders are MMSeg's (_base_/datasets/potsdam.py): random
# resize 0.5-2.0, 512 crop, flip, photometric distortion.
_base_ = ['mmseg::_base_/datasets/potsdam.py']

# Facts of the converted dataset, named so the schedule can derive the
# number of iterations per epoch from them (no magic numbers there).
potsdam_tile_size = 6000  # px, every ISPRS Potsdam tile is 6000 x 6000
potsdam_clip_size = 512  # MMSeg converter's default --clip_size
potsdam_train_tiles = 24  # MMSeg converter's train split (incl. 7_10)
potsdam_test_tiles = 14  # the standard test tiles (converter's `val`)
# The converter places crops on a non-overlapping clip-size grid (plus one
# last row/column shifted inside the tile): ceil(6000 / 512) = 12 per side.
potsdam_crops_per_tile = (-(-potsdam_tile_size // potsdam_clip_size))**2
potsdam_num_train_crops = potsdam_train_tiles * potsdam_crops_per_tile  # 3456
num_classes = 6  # impervious_surface, building, low_vegetation, tree, car,
# clutter (PotsdamDataset; boundary/black pixels are ignored as 255)

# Normalisation of the ImageNet-trained backbones; `size` pads a batch of
# (possibly smaller, after down-scaling) crops to crop_size.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=_base_.crop_size)

# Per-class IoU: MMSeg's IoUMetric + every class's IoU and the 5-class mean
# without Clutter (the paper's / GeoSeg's mIoU) in the results. tools/test.py
# writes them to a JSON file with
#   --cfg-options test_evaluator.results_file=<path>.json
# (tools/run_study.py sets results_file for each run and copies the values
# into the run's result file).
val_evaluator = dict(
    type='PerClassIoUMetric', iou_metrics=['mIoU'], mean_exclude=['clutter'])
test_evaluator = val_evaluator
