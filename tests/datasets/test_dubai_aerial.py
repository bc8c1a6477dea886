"""The Dubai aerial set: converter functions against hand-computed values on
tiny arrays, the converter CLI on a synthetic release, the real release
(when /work/shared holds it) and DubaiAerialDataset through MMSeg."""
import hashlib
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from e2e_utils import REPO
from PIL import Image

from ct_mmseg.datasets import dubai_aerial as dubai

CONVERTER = osp.join(REPO, 'tools', 'dataset_converters', 'dubai_aerial.py')
BASE_CONFIG = osp.join(REPO, 'configs', '_base_', 'datasets',
                       'dubai_aerial.py')
REAL_DATA = osp.normpath(osp.join(REPO, '..', 'shared', 'data',
                                  'dubai_aerial'))

BUILDING, LAND, ROAD, VEGETATION, WATER = (60, 16, 152), (132, 41, 246), \
    (110, 193, 228), (254, 221, 58), (226, 169, 41)
UNLABELED, BLACK, OTHER = (155, 155, 155), (0, 0, 0), (1, 2, 3)
IGNORE = 255


def rgb(*rows):
    return np.array(rows, np.uint8)


# --------------------------------------------------------- colour decoding
def test_colours_decode_to_class_indices_and_the_rest_to_ignore():
    mask = rgb([BUILDING, LAND, ROAD, VEGETATION],
               [WATER, UNLABELED, BLACK, OTHER])
    assert dubai.colour_mask_to_labels(mask).tolist() == [
        [0, 1, 2, 3], [4, IGNORE, IGNORE, IGNORE]]
    assert dubai.colour_mask_to_labels(mask).dtype == np.uint8


def test_palette_png_decodes_like_its_rgb(tmp_path):
    # palette order differs from the class order on purpose
    palette = [BLACK, WATER, BUILDING, UNLABELED, ROAD]
    indices = np.array([[0, 1, 2], [3, 4, 2]], np.uint8)
    image = Image.fromarray(indices, mode='P')
    image.putpalette([v for colour in palette for v in colour])
    path = tmp_path / 'palette.png'
    image.save(path)
    with Image.open(path) as reread:
        assert reread.mode == 'P'
    decoded = dubai.read_rgb(str(path))
    assert decoded.shape == (2, 3, 3) and decoded.dtype == np.uint8
    assert dubai.colour_mask_to_labels(decoded).tolist() == [
        [IGNORE, 4, 0], [IGNORE, 2, 0]]


def test_counts_by_colour_and_by_class():
    mask = rgb([BUILDING, BUILDING, WATER], [BLACK, UNLABELED, BUILDING])
    assert dubai.count_colours(mask) == {
        '#3C1098': 3, '#E2A929': 1, '#000000': 1, '#9B9B9B': 1}
    labels = dubai.colour_mask_to_labels(mask)
    assert dubai.count_labels(labels).tolist() == [3, 0, 0, 0, 1]


def test_colour_conversions_and_their_errors():
    assert dubai.hex_to_rgb('#3C1098') == BUILDING
    assert dubai.code_to_hex(dubai.hex_to_code('#8429f6')) == '#8429F6'
    assert dubai.PALETTE[dubai.CLASSES.index('water')] == list(WATER)
    with pytest.raises(ValueError, match='#RRGGBB'):
        dubai.hex_to_rgb('3C1098')
    with pytest.raises(ValueError, match=r'rgb must be an \(H, W, 3\) uint8'):
        dubai.colour_mask_to_labels(np.zeros((2, 2, 3), np.int32))
    with pytest.raises(ValueError, match='ignore_index 3'):
        dubai.colour_mask_to_labels(rgb([BUILDING]), ignore_index=3)


# ------------------------------------------------------------------ crops
@pytest.mark.parametrize('length, clip, stride, starts', [
    (1000, 512, 256, [0, 256, 488]),  # last crop shifted back to the border
    (768, 512, 256, [0, 256]),  # ends exactly at the border
    (769, 512, 256, [0, 256, 257]),
    (1024, 512, 512, [0, 512]),  # stride = clip: no overlap
    (512, 512, 256, [0]),
    (300, 512, 256, [0]),  # shorter than a crop: one, padded later
])
def test_window_starts(length, clip, stride, starts):
    assert dubai.window_starts(length, clip, stride).tolist() == starts


def test_window_starts_errors_name_the_argument():
    with pytest.raises(ValueError, match='stride_size 600 > clip_size 512'):
        dubai.window_starts(1000, 512, 600)
    with pytest.raises(ValueError, match='clip_size must be a positive'):
        dubai.window_starts(1000, 0, 1)
    with pytest.raises(ValueError, match='stride_size must be a positive'):
        dubai.window_starts(1000, 512, 0)


def test_crop_windows_overlap_and_keep_the_edge_crop_inside():
    # 6 x 10 image, 4 px crops every 3 px: rows start at 0, 2 (the last one
    # shifted back from 3), columns at 0, 3, 6 (the last one ends at 10)
    windows = dubai.crop_windows(6, 10, clip_size=4, stride_size=3)
    assert windows.tolist() == [
        [0, 0, 4, 4], [3, 0, 7, 4], [6, 0, 10, 4],
        [0, 2, 4, 6], [3, 2, 7, 6], [6, 2, 10, 6]]
    covered = np.zeros((6, 10), int)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] += 1
    assert covered.min() == 1  # every pixel is in a crop
    assert covered.max() == 4  # and crops overlap


def test_an_image_smaller_than_a_crop_is_padded_with_ignore():
    image = np.arange(3 * 5 * 3, dtype=np.uint8).reshape(3, 5, 3)
    labels = np.arange(15, dtype=np.uint8).reshape(3, 5)
    windows = dubai.crop_windows(3, 5, clip_size=4, stride_size=2)
    # too short: one row at 0; 5 wide: columns at 0 and 1
    assert windows.tolist() == [[0, 0, 4, 3], [1, 0, 5, 3]]
    crop = dubai.crop_and_pad(labels, windows[1], 4, dubai.MASK_PAD_VALUE)
    assert crop.tolist() == [[1, 2, 3, 4], [6, 7, 8, 9], [11, 12, 13, 14],
                             [IGNORE] * 4]
    crop = dubai.crop_and_pad(image, windows[0], 4, dubai.IMAGE_PAD_VALUE)
    assert crop.shape == (4, 4, 3)
    assert (crop[:3] == image[:, :4]).all() and (crop[3] == 0).all()
    with pytest.raises(ValueError, match='window'):
        dubai.crop_and_pad(labels, [0, 0, 6, 3], 4, IGNORE)


# ------------------------------------------------------------------ split
def test_default_split_keeps_whole_tiles_apart():
    split = dubai.assign_splits(range(1, 9))
    assert split == {1: 'train', 4: 'train', 5: 'train', 6: 'train',
                     7: 'train', 2: 'val', 3: 'test', 8: 'test'}


def test_split_errors_and_left_out_tiles():
    tiles = [1, 2, 3, 4]
    with pytest.raises(ValueError, match="tile 2 is in both 'val' and "
                       "'train'"):
        dubai.assign_splits(tiles, dict(train=[1, 2], val=[2], test=[3]))
    with pytest.raises(ValueError, match=r'test_tiles names tile 9'):
        dubai.assign_splits(tiles, dict(train=[1], val=[2], test=[9]))
    with pytest.raises(ValueError, match='unknown splits'):
        dubai.assign_splits(tiles, dict(training=[1]))
    # a tile no split names is left out
    assert dubai.assign_splits(tiles, dict(train=[1, 2], val=[3])) == {
        1: 'train', 2: 'train', 3: 'val'}


def test_crop_names_trace_the_tile():
    pair = dubai.Pair(3, 'image_part_007', 'a.jpg', 'a.png')
    name = dubai.crop_file_name(pair, [0, 32, 509, 544])
    assert name == 'tile3_image_part_007_0_32_509_544.png'
    assert dubai.tile_of_crop(name) == 3
    with pytest.raises(ValueError, match='not a converted Dubai crop'):
        dubai.tile_of_crop('2_10_0_0_512_512.png')


# ------------------------------------------- the CLI on a synthetic release
def write_release(root, sizes, palette_tiles=()):
    """A release in the published layout: ``Tile N/images/*.jpg`` and
    colour ``masks/*.png`` (palette PNGs for ``palette_tiles``); each mask
    is a horizontal band per class colour + one unlabeled row."""
    colours = [BUILDING, LAND, ROAD, VEGETATION, WATER]
    for tile, (height, width) in sizes.items():
        for kind in ('images', 'masks'):
            os.makedirs(osp.join(root, f'Tile {tile}', kind))
        band = np.arange(height) * len(colours) // height
        mask = np.array(colours, np.uint8)[band][:, None].repeat(width, 1)
        mask[-1] = UNLABELED
        image = np.full((height, width, 3), 10 * tile, np.uint8)
        name = 'image_part_001'
        Image.fromarray(image).save(
            osp.join(root, f'Tile {tile}', 'images', name + '.jpg'),
            quality=100)
        out = Image.fromarray(mask)
        if tile in palette_tiles:  # index k: colours[k], unlabeled last
            indices = np.append(band[:-1], len(colours))
            out = Image.fromarray(
                indices.astype(np.uint8)[:, None].repeat(width, 1), mode='P')
            out.putpalette([v for c in colours + [UNLABELED] for v in c])
        out.save(osp.join(root, f'Tile {tile}', 'masks', name + '.png'))


def run_converter(*args, check=True):
    """``python <converter> args``: the finished process (stdout, stderr);
    with ``check`` it must succeed."""
    out = subprocess.run([sys.executable, CONVERTER, *map(str, args)],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    if check:
        assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    return out


def test_converter_cli_on_a_synthetic_release(tmp_path):
    release, out = tmp_path / 'release', tmp_path / 'out'
    # tile 1 (train) 40 x 50; tile 2 (val) 20 x 30, shorter than a crop;
    # tile 3 (test) 32 x 32 as a palette PNG
    write_release(str(release), {1: (40, 50), 2: (20, 30), 3: (32, 32)},
                  palette_tiles=(3, ))
    log = run_converter(release, '-o', out, '--clip_size', 32,
                        '--stride_size', 16, '--train_tiles', 1,
                        '--val_tiles', 2, '--test_tiles', 3).stdout
    files = {split: sorted(os.listdir(out / 'img_dir' / split))
             for split in dubai.SPLITS}
    # train: rows at 0, 8; columns at 0, 16, 18 (stride 16)
    assert files['train'] == sorted(
        f'tile1_image_part_001_{x}_{y}_{x + 32}_{y + 32}.png'
        for y in (0, 8) for x in (0, 16, 18))
    # val: eval stride = clip; one crop, padded from 20 x 30 to 32 x 32
    assert files['val'] == ['tile2_image_part_001_0_0_30_20.png']
    assert files['test'] == ['tile3_image_part_001_0_0_32_32.png']
    for split in dubai.SPLITS:
        assert sorted(os.listdir(out / 'ann_dir' / split)) == files[split]
    assert 'train: 6 crops' in log

    def read(kind, split, name):
        return np.asarray(Image.open(out / kind / split / name))

    # a train crop is the source region, bands decoded to class indices
    labels = read('ann_dir', 'train', 'tile1_image_part_001_16_8_48_40.png')
    band = np.arange(40) * 5 // 40
    expected = np.where(np.arange(40) == 39, IGNORE, band)[8:40]
    assert (labels == expected[:, None]).all()
    image = read('img_dir', 'train', 'tile1_image_part_001_16_8_48_40.png')
    assert image.shape == (32, 32, 3)
    # the padded val crop: image 0 and mask 255 outside the 20 x 30 source
    labels = read('ann_dir', 'val', files['val'][0])
    image = read('img_dir', 'val', files['val'][0])
    assert labels.shape == (32, 32)
    assert (labels[20:] == IGNORE).all() and (labels[:, 30:] == IGNORE).all()
    assert (image[20:] == 0).all() and (image[:19, :30] > 0).all()
    # the palette-PNG tile decodes to the same bands
    labels = read('ann_dir', 'test', files['test'][0])
    band = np.arange(32) * 5 // 32
    assert (labels[:31] == band[:31, None]).all()
    assert (labels[31] == IGNORE).all()
    # the held-out splits whole, uncropped and unpadded: every pixel once
    for split, tile, (height, width) in (('val', 2, (20, 30)),
                                         ('test', 3, (32, 32))):
        name = f'tile{tile}_image_part_001_0_0_{width}_{height}.png'
        for kind in ('img_dir', 'ann_dir'):
            assert os.listdir(out / kind / f'{split}_whole') == [name]
        labels = read('ann_dir', f'{split}_whole', name)
        band = np.arange(height) * 5 // height
        assert labels.shape == (height, width)
        assert (labels[:-1] == band[:-1, None]).all()
        assert (labels[-1] == IGNORE).all()
        assert read('img_dir', f'{split}_whole', name).shape == (
            height, width, 3)
    assert not (out / 'img_dir' / 'train_whole').exists()


def test_converter_checks_the_strides_before_writing(tmp_path):
    release = tmp_path / 'release'
    write_release(str(release), {1: (8, 8), 2: (8, 8), 3: (8, 8)})
    split = dict(train=[1], val=[2], test=[3])
    with pytest.raises(ValueError, match=r'eval_stride_size must be an '
                       r'integer in \[1, clip_size 8\], got 9'):
        dubai.convert(str(release), str(tmp_path / 'out'), split,
                      clip_size=8, stride_size=4, eval_stride_size=9)
    with pytest.raises(ValueError, match='stride_size .* got 0'):
        dubai.convert(str(release), str(tmp_path / 'out'), split,
                      clip_size=8, stride_size=0)
    assert not (tmp_path / 'out').exists()


def test_converter_rejects_a_tile_in_two_splits(tmp_path):
    release = tmp_path / 'release'
    write_release(str(release), {1: (8, 8), 2: (8, 8), 3: (8, 8)})
    out = run_converter(release, '-o', tmp_path / 'out', '--train_tiles', 1,
                        2, '--val_tiles', 3, '--test_tiles', 2, check=False)
    assert out.returncode != 0
    assert re.search(r"ValueError: tile 2 is in both 'test' and 'train' "
                     r"\(--test_tiles\)", out.stderr)
    assert not (tmp_path / 'out').exists()  # checked before writing


# ------------------------------------------------- DubaiAerialDataset (MMSeg)
def test_dataset_loads_through_mmseg_from_the_base_config(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    release, out = tmp_path / 'release', tmp_path / 'data'
    write_release(str(release), {1: (64, 80), 2: (64, 64), 3: (64, 64)})
    run_converter(release, '-o', out, '--clip_size', 64, '--stride_size', 32,
                  '--train_tiles', 1, '--val_tiles', 2, '--test_tiles', 3)
    cfg = Config.fromfile(BASE_CONFIG)
    assert cfg.train_dataloader.dataset.type == 'DubaiAerialDataset'
    assert cfg.test_dataloader.dataset.data_prefix.img_path == 'img_dir/test'
    assert cfg.val_evaluator.type == cfg.test_evaluator.type == 'IoUMetric'
    assert cfg.num_classes == len(dubai.CLASSES)
    # the crop size from the command line (--cfg-options), as documented
    crop = cfg.copy()
    crop.merge_from_dict(
        {'train_dataloader.dataset.pipeline.3.crop_size': (32, 32)})
    step = crop.train_dataloader.dataset.pipeline[3]
    assert step.type == 'RandomCrop' and step.crop_size == (32, 32)
    init_default_scope('mmseg')
    lengths = {}
    for split in dubai.SPLITS:
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = str(out)
        dataset = DATASETS.build(loader.dataset)
        lengths[split] = len(dataset)
        assert dataset.metainfo['classes'] == dubai.CLASSES
        assert dataset.metainfo['palette'] == dubai.PALETTE
        sample = dataset[0]
        gt = sample['data_samples'].gt_sem_seg.data
        assert set(gt.unique().tolist()) <= set(range(5)) | {IGNORE}
        if split != 'train':
            # the test pipeline scales to the converter's clip size (a
            # no-op on real crops); the mask stays as read
            assert tuple(sample['inputs'].shape) == (3, 512, 512)
            assert tuple(gt.shape[-2:]) == (64, 64)
            assert gt.unique().tolist() == [0, 1, 2, 3, 4, IGNORE]
    # 64 x 80 train tile, 64 px crops every 32 px: columns at 0 and 16
    assert lengths == dict(train=2, val=1, test=1)


def test_base_sits_beside_stock_mmseg_bases(tmp_path):
    """As docs/dubai_aerial.md shows: no key clashes with MMSeg's model,
    runtime and schedule bases."""
    from mmengine.config import Config
    config = tmp_path / 'upernet_dubai.py'
    config.write_text(f"""
_base_ = [
    'mmseg::_base_/models/upernet_swin.py', {BASE_CONFIG!r},
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_20k.py',
]
custom_imports = dict(imports=['ct_mmseg'], allow_failed_imports=False)
model = dict(decode_head=dict(num_classes=5),
             auxiliary_head=dict(num_classes=5))
""")
    cfg = Config.fromfile(str(config))
    assert cfg.test_dataloader.dataset.type == 'DubaiAerialDataset'
    assert cfg.model.type == 'EncoderDecoder'


# ------------------------------------------------------ the real release
needs_real_data = pytest.mark.skipif(
    not osp.isdir(REAL_DATA),
    reason=f'the Dubai aerial release is not at {REAL_DATA} '
    '(<repo>/../shared/data/dubai_aerial)')


def readme_colour_counts():
    """{'#RRGGBB': (pixels, half a unit of the last printed digit)} from
    the release's README table (e.g. '13.2 M' -> 13.2e6 +- 0.05e6)."""
    with open(osp.join(REAL_DATA, 'README.md')) as f:
        text = f.read()
    rows = re.findall(r'\|\s*[^|]+\|\s*(#[0-9A-Fa-f]{6})\s*\|\s*([\d.]+)\s*M'
                      r'\s*\|', text)
    counts = {}
    for colour, millions in rows:
        decimals = len(millions.split('.')[1]) if '.' in millions else 0
        counts[colour.upper()] = (float(millions) * 1e6,
                                  0.5 * 10**(6 - decimals))
    return counts


@pytest.fixture(scope='module')
def real_counts():
    """Colour counts (np.unique, independent of the decoder) and decoded
    class counts of every released mask, summed; and the image sizes."""
    colours, classes, sizes = {}, 0, {}
    for pair in dubai.find_pairs(REAL_DATA):
        mask = dubai.read_rgb(pair.mask_path)
        codes = (mask[..., 0].astype(np.int64) * 65536 +
                 mask[..., 1].astype(np.int64) * 256 + mask[..., 2])
        for code, n in zip(*np.unique(codes, return_counts=True)):
            colours[f'#{code:06X}'] = colours.get(f'#{code:06X}', 0) + int(n)
        classes = classes + dubai.count_labels(
            dubai.colour_mask_to_labels(mask))
        sizes[pair] = mask.shape[:2]
    return dict(colours=colours, classes=classes, sizes=sizes)


@needs_real_data
def test_real_masks_match_the_readme_counts(real_counts):
    readme = readme_colour_counts()
    assert set(readme) == set(dubai.CLASS_COLOURS) | set(
        dubai.IGNORED_COLOURS.values())
    colours = real_counts['colours']
    assert set(colours) == set(readme)  # no colour beyond the README's
    for colour, (expected, tolerance) in readme.items():
        assert abs(colours[colour] - expected) <= tolerance, colour
    # the decoder's class counts are exactly the colour counts ...
    classes = real_counts['classes']
    assert classes.tolist() == [colours[c] for c in dubai.CLASS_COLOURS]
    # ... and everything else (unlabeled, black) is ignored
    total = sum(h * w for h, w in real_counts['sizes'].values())
    assert total - classes.sum() == sum(
        colours[c] for c in dubai.IGNORED_COLOURS.values())
    for name, colour in zip(dubai.CLASSES, dubai.CLASS_COLOURS):
        assert abs(classes[dubai.CLASSES.index(name)] -
                   readme[colour][0]) <= readme[colour][1], name


@needs_real_data
def test_config_fact_is_the_default_number_of_train_crops(real_counts):
    from mmengine.config import Config
    cfg = Config.fromfile(BASE_CONFIG)
    split = dubai.assign_splits(range(1, 9))
    crops = sum(len(dubai.crop_windows(h, w, dubai.DEFAULT_CLIP_SIZE,
                                       dubai.DEFAULT_STRIDE_SIZE))
                for pair, (h, w) in real_counts['sizes'].items()
                if split[pair.tile] == 'train')
    assert cfg.dubai_num_train_crops == crops
    assert cfg.dubai_clip_size == dubai.DEFAULT_CLIP_SIZE


@needs_real_data
def test_no_crop_of_a_test_tile_reaches_train_or_val(tmp_path):
    """The converter on the real files (the first image of every tile, to
    stay fast) with the default split: every crop's name names a tile of
    its split, and no test crop's pixels appear in train or val."""
    subset = tmp_path / 'release'
    for tile in range(1, 9):
        for kind, ext in (('images', 'jpg'), ('masks', 'png')):
            os.makedirs(subset / f'Tile {tile}' / kind)
            name = f'image_part_001.{ext}'
            os.symlink(osp.join(REAL_DATA, f'Tile {tile}', kind, name),
                       subset / f'Tile {tile}' / kind / name)
    out = tmp_path / 'data'
    run_converter(subset, '-o', out)
    digests = {}
    for split in dubai.SPLITS:
        names = sorted(os.listdir(out / 'img_dir' / split))
        assert names and names == sorted(os.listdir(out / 'ann_dir' / split))
        tiles = {dubai.tile_of_crop(n) for n in names}
        assert tiles == set(dubai.DEFAULT_SPLIT[split])
        digests[split] = {
            hashlib.sha1((out / 'img_dir' / split / n).read_bytes()
                         ).hexdigest() for n in names}
    assert not digests['test'] & (digests['train'] | digests['val'])
    assert not digests['val'] & digests['train']
