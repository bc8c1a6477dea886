"""The Dubai subset shipped in ct_mmseg/datasets/dubai_mini (the main job's
data): its files, its conversion by the project's converter, loading through
DubaiAerialDataset with the demo configs, the package data that carries it,
and the functions that made it (on a tiny synthetic release).
"""
import ast
import glob
import hashlib
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from ct_mmseg.datasets import dubai_aerial as dubai
from ct_mmseg.datasets import dubai_subset as mini
from e2e_utils import REPO

DEMO = osp.join(REPO, 'configs', 'ct', 'demo')
BASELINE = osp.join(DEMO, 'swin-tiny_upernet_dubai-demo.py')
CT = osp.join(DEMO, 'swin-tiny_upernet_ct_dubai-demo.py')
RUN_DEMO = osp.join(REPO, 'tools', 'run_demo.sh')
RELEASE = osp.join(osp.dirname(REPO), 'shared', 'data', 'dubai_aerial')
# the conversion of tools/run_demo.sh
CONVERT_OPTIONS = ['--clip_size', '384', '--stride_size', '192',
                   *mini.converter_args()]


def shipped_files():
    return sorted(osp.relpath(osp.join(folder, name), mini.MINI_ROOT)
                  for folder, _, names in os.walk(mini.MINI_ROOT)
                  for name in names)


def test_the_shipped_files_are_the_selection_in_release_colours():
    expected = ['README.md'] + sorted(
        f'Tile {tile}/{kind}/{name}.{ext}'
        for tile, names in mini.SELECTION.items() for name in names
        for kind, ext in (('images', 'jpg'), ('masks', 'png')))
    assert shipped_files() == expected
    total = sum(osp.getsize(osp.join(mini.MINI_ROOT, f))
                for f in expected)
    assert total < 4e6, f'{total / 1e6:.1f} MB: "a few MB"'
    for tile, names in mini.SELECTION.items():
        for name in names:
            folder = osp.join(mini.MINI_ROOT, f'Tile {tile}')
            image = dubai.read_rgb(osp.join(folder, 'images', name + '.jpg'))
            mask_path = osp.join(folder, 'masks', name + '.png')
            mask = dubai.read_rgb(mask_path)
            assert image.shape == mask.shape
            mini.check_mask_colours(mask, mask_path)  # raises if not
    # every split has every class (pixels of the masks, before cropping)
    for split, tiles in mini.MINI_SPLIT.items():
        counts = sum(dubai.count_labels(dubai.colour_mask_to_labels(
            dubai.read_rgb(osp.join(mini.MINI_ROOT, f'Tile {t}', 'masks',
                                    n + '.png'))))
            for t in tiles for n in mini.SELECTION[t])
        assert (counts > 0).all(), (split, counts)


def test_the_readme_states_source_licence_and_recipe():
    text = open(osp.join(mini.MINI_ROOT, 'README.md')).read()
    for words in ('Humans in the Loop', 'Mohammed Bin Rashid Space Centre',
                  'CC0', 'public domain', 'tools/make_dubai_mini.py',
                  'nearest neighbour', 'area averaging'):
        assert words in text, words
    for tile, names in mini.SELECTION.items():
        for name in names:
            assert re.search(rf'\| {tile} \| [a-z ()-]+ \| {name} \|', text)


def test_run_demo_converts_with_these_options():
    script = open(RUN_DEMO).read()
    command = ' '.join(CONVERT_OPTIONS)
    flat = re.sub(r'\\\n\s*', '', script)
    assert 'tools/dataset_converters/dubai_aerial.py "$MINI"' in flat
    assert command in re.sub(r'\s+', ' ', flat)
    # the Potsdam route is still there
    assert 'DEMO=potsdam' in script
    assert 'configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py' in script
    assert 'tools/prepare_demo_data.py' in script
    assert subprocess.run(['bash', '-n', RUN_DEMO]).returncode == 0


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    """The shipped subset through the project's converter (CLI), as
    tools/run_demo.sh converts it."""
    out = str(tmp_path_factory.mktemp('dubai_mini'))
    done = subprocess.run(
        [sys.executable,
         osp.join(REPO, 'tools', 'dataset_converters', 'dubai_aerial.py'),
         mini.MINI_ROOT, '-o', out, *CONVERT_OPTIONS],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'train: 60 crops' in done.stdout
    return out


def test_the_subset_converts_and_loads_through_the_demo_config(converted):
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(CT)
    sizes = {}
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        spec = cfg[loader]['dataset'].copy()
        spec['data_root'] = converted
        dataset = DATASETS.build(spec)
        assert type(dataset).__name__ == 'DubaiAerialDataset'
        assert dataset.metainfo['classes'] == dubai.CLASSES
        sizes[loader] = len(dataset)
        sample = dataset[0]
        image = sample['inputs']
        labels = sample['data_samples'].gt_sem_seg.data
        assert image.shape[0] == 3 and labels.shape[1:] == image.shape[1:]
        assert set(labels.unique().tolist()) <= {0, 1, 2, 3, 4, 255}
        if loader == 'train_dataloader':
            assert tuple(image.shape[1:]) == (256, 256)  # the random crop
        tiles = {dubai.tile_of_crop(info['img_path'])
                 for info in dataset.load_data_list()}
        split = loader.split('_')[0]
        assert tiles == set(mini.MINI_SPLIT[split]), (loader, tiles)
    # whole images for val and test: the held-out tile is scored whole
    assert sizes == {'train_dataloader': 60, 'val_dataloader': 1,
                     'test_dataloader': 2}
    whole = sorted(os.listdir(osp.join(converted, 'img_dir', 'test_whole')))
    assert whole == ['tile8_image_part_005_0_0_1074_740.png',
                     'tile8_image_part_008_0_0_1074_740.png']


def test_the_dubai_demo_ct_config_is_its_baseline_plus_the_fragment():
    from ct_mmseg.config_injection import add_ct_to_config
    base = Config.fromfile(BASELINE).to_dict()
    ct = Config.fromfile(CT).to_dict()
    ct_keys = ('ct_head', 'runner_type', 'custom_hooks')
    assert {k: v for k, v in ct.items() if k not in ct_keys} == base
    model = add_ct_to_config(Config(ct)).model
    assert model.decode_head.num_classes == 5
    assert model.auxiliary_head[0].num_classes == 5
    assert ct['test_evaluator']['type'] == 'PerClassIoUMetric'
    assert ct['train_cfg']['max_iters'] == ct['param_scheduler'][1]['end']


def test_setup_package_data_carries_every_shipped_file():
    tree = ast.parse(open(osp.join(REPO, 'setup.py')).read())
    call = next(node for node in ast.walk(tree)
                if isinstance(node, ast.Call) and
                getattr(node.func, 'id', None) == 'setup')
    package_data = ast.literal_eval(next(
        k.value for k in call.keywords if k.arg == 'package_data'))
    folder = osp.join(REPO, 'ct_mmseg', 'datasets')
    matched = {osp.relpath(path, mini.MINI_ROOT)
               for pattern in package_data['ct_mmseg.datasets']
               for path in glob.glob(osp.join(folder, pattern))}
    assert matched == set(shipped_files())


def write_release(root, tile, name, image, mask, palette_mask=False):
    folder = osp.join(root, f'Tile {tile}')
    os.makedirs(osp.join(folder, 'images'), exist_ok=True)
    os.makedirs(osp.join(folder, 'masks'), exist_ok=True)
    Image.fromarray(image).save(osp.join(folder, 'images', name + '.jpg'),
                                quality=95)
    mask_image = Image.fromarray(mask)
    if palette_mask:
        mask_image = mask_image.quantize(colors=8, method=Image.MAXCOVERAGE)
    mask_image.save(osp.join(folder, 'masks', name + '.png'))


def test_make_subset_halves_images_and_keeps_mask_colours(tmp_path):
    building, water = (dubai.hex_to_rgb(c) for c in ('#3C1098', '#E2A929'))
    mask = np.zeros((6, 8, 3), np.uint8)
    mask[:] = building
    mask[:, 4:] = water  # left half building, right half water
    mask[0, 0] = dubai.hex_to_rgb('#9B9B9B')  # unlabeled
    image = np.full((6, 8, 3), 200, np.uint8)
    image[:, 4:] = 40
    release = str(tmp_path / 'release')
    write_release(release, 3, 'image_part_001', image, mask,
                  palette_mask=True)
    out = str(tmp_path / 'mini')
    lines = []
    records = mini.make_subset(release, out, {3: ('image_part_001',)},
                               log=lines.append)
    assert records[0]['size'] == (8, 6) and records[0]['new_size'] == (4, 3)
    small = dubai.read_rgb(osp.join(out, 'Tile 3', 'masks',
                                    'image_part_001.png'))
    assert small.shape == (3, 4, 3)
    assert (small[:, :2] == building).all() and (small[:, 2:] == water).all()
    assert 'Tile 3/image_part_001: 8x6 -> 4x3' in lines[0]
    # the converter reads the output as a release
    pairs = dubai.find_pairs(out)
    assert [(p.tile, p.name) for p in pairs] == [(3, 'image_part_001')]
    # area averaging mixes colours, nearest neighbour does not
    ramp = np.zeros((2, 4, 3), np.uint8)
    ramp[:, 1::2] = water
    ramp[:, ::2] = building
    assert len(np.unique(mini.downscale_image(ramp, 2).reshape(-1, 3),
                         axis=0)) == 1  # one mixed colour, neither class
    with pytest.raises(ValueError, match='mask.png: 1 colour'):
        mini.check_mask_colours(mini.downscale_image(ramp, 2), 'mask.png')
    mini.check_mask_colours(mini.downscale_mask(ramp, 2), 'mask.png')


def test_make_subset_errors_name_the_file(tmp_path):
    release = str(tmp_path / 'release')
    write_release(release, 1, 'image_part_001',
                  np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3),
                                                          np.uint8))
    with pytest.raises(FileNotFoundError, match='Tile 1/images/'
                       'image_part_002.jpg does not exist'):
        mini.make_subset(release, str(tmp_path / 'o'),
                         {1: ('image_part_002',)})
    with pytest.raises(ValueError, match='must be >= 1'):
        mini.downscaled_size(4, 4, 0.5)
    assert mini.downscaled_size(797, 643, 2) == (398, 322)
    # the CLI says what went wrong and exits 1
    done = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'make_dubai_mini.py'),
         str(tmp_path / 'nowhere'), '-o', str(tmp_path / 'o')],
        capture_output=True, text=True)
    assert done.returncode == 1
    assert 'error: selected file' in done.stderr and 'nowhere' in \
        done.stderr


@pytest.mark.skipif(not osp.isdir(RELEASE), reason='no Dubai release at '
                    f'{RELEASE}')
def test_the_subset_is_reproducible_from_the_release(tmp_path):
    mini.make_subset(RELEASE, str(tmp_path))

    def digest(root):
        return {f: hashlib.sha256(open(osp.join(root, f), 'rb').read())
                .hexdigest() for f in shipped_files() if f != 'README.md'}

    assert digest(str(tmp_path)) == digest(mini.MINI_ROOT)
