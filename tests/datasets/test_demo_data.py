"""Tests of the synthetic Potsdam demo data (ct_mmseg.datasets.demo_potsdam)
and its preparation through MMSeg's own converter
(ct_mmseg.datasets.demo_potsdam_prepare, tools/prepare_demo_data.py)."""
import io
import os
import os.path as osp
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from ct_mmseg.datasets import demo_potsdam as gen
from ct_mmseg.datasets import demo_potsdam_prepare as prep
from e2e_utils import REPO

TOOLS = osp.join(REPO, 'tools')

CLIP = 512  # the converter's default clip size
# Small end-to-end setting: 2 train + 1 val tiles of 1024 px.
E2E = dict(num_train=2, num_val=1, tile_size=1024, seed=0)


def _read_zip_tiffs(path):
    """``{entry name: RGB array}`` for every TIFF in a zip."""
    with zipfile.ZipFile(path) as zf:
        return {
            name: np.asarray(Image.open(io.BytesIO(zf.read(name))))
            for name in zf.namelist() if name.endswith('.tif')
        }


def _classes(label_rgb):
    """Map an ISPRS label image to class ids (6 = black boundary)."""
    colours = np.concatenate([gen.ISPRS_COLOURS, gen.BOUNDARY_COLOUR[None]])
    match = (label_rgb[..., None, :] == colours).all(-1)
    assert match.any(-1).all(), 'pixel with a non-ISPRS colour'
    return match.argmax(-1)


def test_same_seed_same_bytes_other_seed_other_tiles(tmp_path):
    kw = dict(num_train=1, num_val=1, tile_size=512)
    a = gen.write_demo_potsdam(str(tmp_path / 'a'), seed=0, **kw)
    b = gen.write_demo_potsdam(str(tmp_path / 'b'), seed=0, **kw)
    c = gen.write_demo_potsdam(str(tmp_path / 'c'), seed=1, **kw)
    for pa, pb in zip(a, b):
        with open(pa, 'rb') as fa, open(pb, 'rb') as fb:
            assert fa.read() == fb.read(), osp.basename(pa)
    for pa, pc in zip(a, c):
        tiles_a, tiles_c = _read_zip_tiffs(pa), _read_zip_tiffs(pc)
        assert tiles_a.keys() == tiles_c.keys()
        for name in tiles_a:
            assert not np.array_equal(tiles_a[name], tiles_c[name]), name


def test_archive_layout_and_label_colours(tmp_path):
    num_train, num_val, size = 2, 1, 512
    rgb_zip, label_zip = gen.write_demo_potsdam(
        str(tmp_path), num_train=num_train, num_val=num_val, tile_size=size)
    assert osp.basename(rgb_zip) == '2_Ortho_RGB.zip'
    assert osp.basename(label_zip) == '5_Labels_all.zip'
    ids = gen.TRAIN_IDS[:num_train] + gen.VAL_IDS[:num_val]
    rgbs, labels = _read_zip_tiffs(rgb_zip), _read_zip_tiffs(label_zip)
    assert set(rgbs) == {f'2_Ortho_RGB/top_potsdam_{t}_RGB.tif' for t in ids}
    assert set(labels) == {
        f'5_Labels_all/top_potsdam_{t}_label.tif' for t in ids}
    allowed = {tuple(c) for c in gen.ISPRS_COLOURS} | {(0, 0, 0)}
    for array in list(rgbs.values()) + list(labels.values()):
        assert array.shape == (size, size, 3) and array.dtype == np.uint8
    for name, label in labels.items():
        colours = {tuple(c) for c in np.unique(label.reshape(-1, 3), axis=0)}
        assert colours <= allowed, name
        # every class and some boundary pixels in each tile
        assert colours == allowed, name


def test_tile_content():
    """Every 512 px crop has all classes; cars never fill a 32 px patch."""
    size = 1024
    rgb, label = gen.make_tile(np.random.default_rng(3), size)
    cls = _classes(label)
    crops = cls.reshape(size // CLIP, CLIP, size // CLIP, CLIP).swapaxes(1, 2)
    for crop in crops.reshape(-1, CLIP, CLIP):
        assert set(np.unique(crop)) >= set(range(gen.NUM_CLASSES))
    patches = cls.reshape(size // 32, 32, size // 32, 32).swapaxes(1, 2)
    assert not (patches == gen.CAR).all(axis=(2, 3)).any()
    # The image is informative: class-mean colours are well separated (cars
    # are left out: they come in several paints, so their mean is not).
    kinds = [k for k in range(gen.NUM_CLASSES) if k != gen.CAR]
    means = np.array([rgb[cls == k].mean(0) for k in kinds])
    dists = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert dists[~np.eye(len(kinds), dtype=bool)].min() > 30


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp('demo')
    data_root, raw_dir = str(base / 'potsdam_demo'), str(base / 'raw')
    messages = []
    status = prep.prepare(data_root, raw_dir, log=messages.append, **E2E)
    assert status == 'converted', messages
    return data_root, raw_dir


def _expected_crops(num_tiles, tile_size):
    # The converter cuts a non-overlapping grid of CLIP px crops.
    return num_tiles * (tile_size // CLIP)**2


# mmseg warns that LoadAnnotations(reduce_zero_label=...) is deprecated in
# favour of the dataset argument; the pipeline is the one the brief specifies.
@pytest.mark.filterwarnings('ignore:`reduce_zero_label` will be deprecated')
def test_end_to_end_with_mmseg_dataset(prepared):
    from mmseg.datasets import PotsdamDataset
    from mmseg.utils import register_all_modules
    register_all_modules()
    data_root, _ = prepared
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    seen = {}
    for split, num_tiles in (('train', E2E['num_train']),
                             ('val', E2E['num_val'])):
        ds = PotsdamDataset(
            data_root=data_root,
            data_prefix=dict(
                img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}'),
            pipeline=pipeline)
        assert len(ds) == _expected_crops(num_tiles, E2E['tile_size'])
        values = set()
        for i in range(len(ds)):
            sample = ds[i]
            assert tuple(sample['inputs'].shape) == (3, CLIP, CLIP)
            values |= set(
                np.unique(sample['data_samples'].gt_sem_seg.data.numpy()))
        seen[split] = values
    num_classes = len(PotsdamDataset.METAINFO['classes'])
    for split, values in seen.items():
        assert values <= set(range(num_classes)) | {255}, split
    train_classes = seen['train'] - {255}
    assert len(train_classes) >= num_classes - 1
    car = PotsdamDataset.METAINFO['classes'].index('car')
    assert car in train_classes
    assert 255 in seen['train']  # the black boundaries became "ignore"


def test_converted_crops_match_generated_tiles(prepared):
    """The converter's PNGs are exact crops; labels map class k to k + 1."""
    data_root, raw_dir = prepared
    tid = gen.TRAIN_IDS[0]
    rgb = _read_zip_tiffs(osp.join(raw_dir, gen.RGB_ZIP))[
        f'{gen.RGB_FOLDER}/top_potsdam_{tid}_RGB.tif']
    label = _read_zip_tiffs(osp.join(raw_dir, gen.LABEL_ZIP))[
        f'{gen.LABEL_FOLDER}/top_potsdam_{tid}_label.tif']
    cls = _classes(label)
    # converter ids: 0 = black/other, 1..6 = the ISPRS classes in order
    expected = np.where(cls == gen.NUM_CLASSES, 0, cls + 1)
    y0 = x0 = E2E['tile_size'] - CLIP  # the last crop of the tile
    name = f'{tid}_{x0}_{y0}_{x0 + CLIP}_{y0 + CLIP}.png'
    img = np.asarray(Image.open(osp.join(data_root, 'img_dir', 'train', name)))
    ann = np.asarray(Image.open(osp.join(data_root, 'ann_dir', 'train', name)))
    np.testing.assert_array_equal(img, rgb[y0:, x0:])
    np.testing.assert_array_equal(ann, expected[y0:, x0:])


def _mtimes(*folders):
    return {
        osp.join(root, f): os.stat(osp.join(root, f)).st_mtime_ns
        for folder in folders for root, _, files in os.walk(folder)
        for f in files
    }


def test_second_run_is_a_no_op(prepared):
    data_root, raw_dir = prepared
    before = _mtimes(data_root, raw_dir)
    cmd = [
        sys.executable, osp.join(TOOLS, 'prepare_demo_data.py'), '--data-root',
        data_root, '--raw-dir', raw_dir, '--tile-size',
        str(E2E['tile_size']), '--num-train', str(E2E['num_train']),
        '--num-val', str(E2E['num_val']), '--seed', str(E2E['seed'])
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'already prepared' in proc.stdout
    assert _mtimes(data_root, raw_dir) == before


def test_cli_rejects_stray_zip(tmp_path):
    raw_dir = tmp_path / 'raw'
    raw_dir.mkdir()
    (raw_dir / '3_Ortho_IRRG.zip').write_bytes(b'')
    proc = subprocess.run([
        sys.executable, osp.join(TOOLS, 'prepare_demo_data.py'),
        '--data-root', str(tmp_path / 'out'), '--raw-dir', str(raw_dir)
    ], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'error:' in proc.stderr and '3_Ortho_IRRG.zip' in proc.stderr


def test_converter_failure_is_reported(tmp_path):
    raw_dir = tmp_path / 'raw'
    raw_dir.mkdir()
    (raw_dir / gen.RGB_ZIP).write_bytes(b'not a zip')
    with pytest.raises(prep.PrepareError, match='converter failed'):
        prep.run_converter(str(raw_dir), str(tmp_path / 'out'))
