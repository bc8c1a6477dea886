"""The CT configs for ISPRS Vaihingen and LoveDA (DCSwin, UNetFormer; each
baseline and + CT), end to end through MMSeg's own datasets and tools:

* each config is its Potsdam counterpart with the data switched: the
  datasets are exactly MMSeg's stock Vaihingen / LoveDA ones, the model
  differs only in the number of classes, the protocol is the paper's with
  its 50 epochs counted over the new training set;
* every CT config differs from its baseline only in the CT keys;
* synthetic raw releases (Vaihingen zips of TIFF tiles, LoveDA zips of PNG
  tiles) go through MMSeg's converters; every config trains one iteration
  and validates through MMSeg's tools/train.py, and is evaluated by MMSeg's
  tools/test.py. The tools run in this process (runpy) to stay fast; tiny
  widths come from the Potsdam tests' child configs (test plumbing only).
"""
import contextlib
import io
import json
import math
import os
import os.path as osp
import runpy
import sys
import zipfile

import numpy as np
import pytest
from e2e_utils import REPO, TOOLS, scalars
from mmengine.config import Config
from PIL import Image
from test_potsdam_configs import (CT_KEYS, PAPER_BATCH, PAPER_EPOCHS,
                                  write_tiny_config)

CONFIG_DIR = osp.join(REPO, 'configs', 'ct')
MODELS = ('dcswin', 'unetformer')
DATASETS = ('vaihingen', 'loveda')
CONFIGS = [f'{m}{v}_{d}' for d in DATASETS for m in MODELS
           for v in ('', '_ct')]
MMSEG_BASES = osp.join(osp.dirname(TOOLS), 'configs', '_base_', 'datasets')
CONVERTERS = osp.join(TOOLS, 'dataset_converters')

# Facts of the two releases and MMSeg's datasets
ISPRS_CLASSES = ('impervious_surface', 'building', 'low_vegetation', 'tree',
                 'car', 'clutter')
LOVEDA_CLASSES = ('background', 'building', 'road', 'water', 'barren',
                  'forest', 'agricultural')
FACTS = {
    # dataset type, classes, train crops / images, classes out of the mean
    'vaihingen': ('ISPRSDataset', ISPRS_CLASSES, 344, ['clutter']),
    'loveda': ('LoveDADataset', LOVEDA_CLASSES, 2522, []),
}
TINY_SIZE = 64  # px, tiles of the synthetic releases = one crop each


@pytest.fixture(scope='module', autouse=True)
def faster_mmengine():
    """Two costs of MMEngine that are pure overhead here, cut for this
    module only (the configs and runs are the same without them):

    * every ``mmseg::`` base is located through pkg_resources, ~0.1 s a
      time and ~10 times per config: remember the answers;
    * the Runner logs and dumps its config formatted by yapf, ~1 s a time,
      most of a tiny run: keep the text unformatted (the same Python).
    """
    import functools

    import mmengine.config.config as mmengine_config
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Config, '_get_cfg_path', staticmethod(
            functools.lru_cache(maxsize=None)(Config._get_cfg_path)))
        patch.setattr(mmengine_config, 'FormatCode',
                      lambda text, **kwargs: (text, False))
        yield


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, f'{name}.py'),
                           import_custom_modules=False)


def dataset_of(name):
    return name.rsplit('_', 1)[1]


def without_scope(value):
    """A config value as plain data, without mmengine's ``_scope_`` keys."""
    if isinstance(value, dict):
        return {k: without_scope(v) for k, v in value.items()
                if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [without_scope(v) for v in value]
    return value


# ------------------------------------------------------------- the configs
def test_the_eight_configs_exist():
    assert len(CONFIGS) == 8
    for name in CONFIGS:
        assert osp.isfile(osp.join(CONFIG_DIR, f'{name}.py')), name


@pytest.mark.parametrize('name', CONFIGS)
def test_data_are_mmsegs_own_and_the_protocol_the_papers(name):
    cfg = load(name).to_dict()
    data = dataset_of(name)
    dataset_type, classes, train_size, excluded = FACTS[data]
    stock = Config.fromfile(osp.join(MMSEG_BASES, f'{data}.py')).to_dict()
    assert without_scope(cfg['train_dataloader']['dataset']) == \
        without_scope(stock['train_dataloader']['dataset'])
    for split in ('val', 'test'):
        assert without_scope(cfg[f'{split}_dataloader']['dataset']) == \
            without_scope(stock['val_dataloader']['dataset'])
    assert cfg['train_dataloader']['dataset']['type'] == dataset_type
    assert cfg['num_classes'] == len(classes)
    for split in ('val', 'test'):
        evaluator = cfg[f'{split}_evaluator']
        assert evaluator['type'] == 'PerClassIoUMetric'
        assert evaluator['mean_exclude'] == excluded
    # 50 epochs of the train set at the paper's batch of 32
    iters_per_epoch = math.ceil(train_size / PAPER_BATCH)
    assert cfg['train_cfg']['max_iters'] == PAPER_EPOCHS * iters_per_epoch
    assert cfg['train_cfg']['val_interval'] == 10 * iters_per_epoch
    assert cfg['default_hooks']['checkpoint']['interval'] == \
        10 * iters_per_epoch


@pytest.mark.parametrize('model', MODELS)
@pytest.mark.parametrize('data', DATASETS)
def test_models_are_the_potsdam_ones_with_the_new_class_count(model, data):
    potsdam = load(f'{model}_potsdam').to_dict()
    cfg = load(f'{model}_{data}').to_dict()
    num_classes = len(FACTS[data][1])
    expected = potsdam['model']
    for head in ('decode_head', 'auxiliary_head'):
        if head in expected:
            expected[head]['num_classes'] = num_classes
    assert cfg['model'] == expected
    # and the rest of the protocol is untouched
    for key in ('optim_wrapper', 'param_scheduler', 'auto_scale_lr',
                'total_batch_size', 'custom_imports', 'randomness'):
        assert cfg[key] == potsdam[key], key
    assert cfg['train_dataloader']['batch_size'] == \
        potsdam['train_dataloader']['batch_size']


@pytest.mark.parametrize('model', MODELS)
@pytest.mark.parametrize('data', DATASETS)
def test_ct_configs_differ_from_baseline_only_in_ct_keys(model, data):
    base = load(f'{model}_{data}').to_dict()
    ct = load(f'{model}_ct_{data}').to_dict()
    assert set(ct) - set(base) == CT_KEYS and not set(base) - set(ct)
    assert all(ct[key] == base[key] for key in base)
    potsdam_ct = load(f'{model}_ct_potsdam').to_dict()
    assert ct['ct_head'] == potsdam_ct['ct_head']  # CL, the authors' clamp


# ------------------------------------------- tiny releases, MMSeg converters
def isprs_generator():
    """The synthetic ISPRS scenes of the demo data
    (ct_mmseg.datasets.demo_potsdam), whose label colours Vaihingen shares
    with Potsdam."""
    from ct_mmseg.datasets import demo_potsdam
    return demo_potsdam


def scene(seed):
    """(rgb, ISPRS colour label) of one synthetic TINY_SIZE px tile."""
    return isprs_generator().make_tile(np.random.default_rng(seed),
                                       TINY_SIZE)


def encoded(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def run_tool(script, *args):
    """A MMSeg tool as ``python <script> args`` but in this process (a new
    interpreter per run would cost more than the tiny runs themselves);
    the environment variables the tools set are restored afterwards."""
    argv, environ = sys.argv, dict(os.environ)
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(script, run_name='__main__')
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)


def write_vaihingen_release(folder, areas):
    """The two zips MMSeg's Vaihingen converter reads: ``top/`` TIFF tiles
    and the eroded ``*_noBoundary.tif`` colour labels."""
    with zipfile.ZipFile(osp.join(
            folder, 'ISPRS_semantic_labeling_Vaihingen.zip'), 'w') as images, \
            zipfile.ZipFile(osp.join(
                folder, 'ISPRS_semantic_labeling_Vaihingen_ground_truth_'
                'eroded_COMPLETE.zip'), 'w') as labels:
        for seed, area in enumerate(areas):
            rgb, label = scene(seed)
            images.writestr(f'top/top_mosaic_09cm_{area}.tif',
                            encoded(rgb, 'TIFF'))
            labels.writestr(f'top_mosaic_09cm_{area}_noBoundary.tif',
                            encoded(label, 'TIFF'))


def write_loveda_release(folder, per_split):
    """Train.zip / Val.zip / Test.zip as LoveDA ships them: ``<Split>/
    {Rural,Urban}/images_png`` and (not for Test) ``masks_png`` with labels
    0 (no data) and 1-7; here ISPRS class k -> k + 1, boundaries -> 0."""
    colours = isprs_generator().ISPRS_COLOURS  # (6, 3), class order
    seed = 0
    for split in ('Train', 'Val', 'Test'):
        with zipfile.ZipFile(osp.join(folder, f'{split}.zip'), 'w') as out:
            for index in range(per_split):
                location = ('Rural', 'Urban')[index % 2]
                rgb, label = scene(seed)
                match = (label[:, :, None] == colours).all(-1)  # (H, W, 6)
                mask = np.where(match.any(-1), match.argmax(-1) + 1, 0)
                out.writestr(f'{split}/{location}/images_png/{seed}.png',
                             encoded(rgb, 'PNG'))
                if split != 'Test':
                    out.writestr(f'{split}/{location}/masks_png/{seed}.png',
                                 encoded(mask.astype(np.uint8), 'PNG'))
                seed += 1


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """{dataset: data root} after MMSeg's converters: 2 train images and 1
    val image of TINY_SIZE px each."""
    root = tmp_path_factory.mktemp('rs_data')
    raw = {d: root / f'{d}_raw' for d in DATASETS}
    for folder in raw.values():
        folder.mkdir()
    # area1 and area3 are train areas for the converter, area2 a test one
    write_vaihingen_release(str(raw['vaihingen']), ['area1', 'area3',
                                                    'area2'])
    run_tool(osp.join(CONVERTERS, 'vaihingen.py'), raw['vaihingen'], '-o',
             root / 'vaihingen', '--clip_size', TINY_SIZE, '--stride_size',
             TINY_SIZE)
    write_loveda_release(str(raw['loveda']), per_split=2)
    run_tool(osp.join(CONVERTERS, 'loveda.py'), raw['loveda'], '-o',
             root / 'loveda')
    roots = {d: str(root / d) for d in DATASETS}
    for data, train, val in (('vaihingen', 2, 1), ('loveda', 2, 2)):
        for split, count in (('train', train), ('val', val)):
            for kind in ('img_dir', 'ann_dir'):
                assert len(os.listdir(osp.join(roots[data], kind,
                                               split))) == count
    return roots


# ----------------------------------------------------- MMSeg's train / test
TRAIN_ITERS = 1
TINY_RUN = f'''
train_cfg = dict(max_iters={TRAIN_ITERS}, val_interval={TRAIN_ITERS})
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval={TRAIN_ITERS}))
'''


def train_and_test(root, name, data_root):
    """tools/train.py then tools/test.py on a tiny child of config
    ``name``; returns the work dir."""
    config = write_tiny_config(str(root), name, data_root)
    with open(config, 'a') as f:
        f.write(TINY_RUN)
    work = root / 'work' / name
    # A logger and a visualizer of its own for every run: in one process
    # MMEngine would hand each run the first run's (MMSeg's runtime names
    # its visualizer 'visualizer'; the logger is named after the config and
    # the second).
    for tool, args in (('train.py', ['--work-dir', work]),
                       ('test.py', [work / f'iter_{TRAIN_ITERS}.pth',
                                    '--work-dir', work / 'test'])):
        run = f'{name}_{tool[:-3]}'
        extra = [f'test_evaluator.results_file={work}/test/iou.json'
                 ] if tool == 'test.py' else []
        run_tool(osp.join(TOOLS, tool), config, *args, '--cfg-options',
                 f'experiment_name={run}', f'visualizer.name={run}', *extra)
    return work


@contextlib.contextmanager
def forget_new_global_instances():
    """MMEngine keeps each runner's logger, message hub, visualizer and
    default scope in class-level registries, and "the current one" is the
    newest: drop the ones made inside, so that later tests in this process
    see the instances they would have seen without these runs."""
    from mmengine.utils import ManagerMixin

    def managed(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from managed(sub)

    before = {cls: set(cls._instance_dict) for cls in managed(ManagerMixin)}
    try:
        yield
    finally:
        for cls in managed(ManagerMixin):
            for name in set(cls._instance_dict) - before.get(cls, set()):
                instance = cls._instance_dict.pop(name)
                for handler in list(getattr(instance, 'handlers', ())):
                    handler.close()  # the loggers' log files
                    instance.removeHandler(handler)


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny_data):
    """Every config: tools/train.py (1 iteration, then validation), then
    tools/test.py on the checkpoint. Returns {name: work dir}."""
    import torch
    root = tmp_path_factory.mktemp('rs_runs')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a small shared CPU, 1 thread is faster
    works = {}
    try:
        with forget_new_global_instances():
            for name in CONFIGS:
                works[name] = train_and_test(root, name,
                                             tiny_data[dataset_of(name)])
    finally:
        torch.set_num_threads(threads)
    return works


@pytest.mark.parametrize('name', CONFIGS)
def test_each_config_trains_validates_and_tests(runs, name):
    _, classes, _, excluded = FACTS[dataset_of(name)]
    records = scalars(runs[name])
    losses = [r for r in records if 'loss' in r]
    assert [r['step'] for r in losses] == list(range(1, TRAIN_ITERS + 1))
    for record in losses:
        assert math.isfinite(record['loss'])
        assert 'decode.loss_ce' in record and 'decode.loss_dice' in record
        ct = sorted(k for k in record if '.loss_ct_s' in k)
        assert len(ct) == (4 if '_ct_' in name else 0)
    # validation after the iteration: per-class IoU of the dataset's classes
    validation = [r for r in records if 'mIoU' in r]
    assert len(validation) == 1
    assert {f'IoU.{c}' for c in classes} <= set(validation[0])
    with open(runs[name] / 'test' / 'iou.json') as f:
        results = json.load(f)
    assert tuple(results['classes']) == classes
    assert results['mean_exclude'] == excluded
    assert results['num_images'] == (1 if 'vaihingen' in name else 2)
