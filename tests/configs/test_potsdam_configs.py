"""The nine Potsdam configs of the paper's Table 1, end to end.

* the protocol (lr, batch, 50 epochs as iterations, clipping, loss) is what
  the paper and the authors' code say, derived here from named facts;
* the full-size models build: the three baselines, and for the six CT
  configs the CT runner's injection measures the real backbone (the tiny
  runs below build and train all nine);
* every CT config differs from its baseline only in the CT keys;
* every config trains for 2 iterations on the demo Potsdam through MMSeg's
  tools/train.py and is evaluated by MMSeg's tools/test.py - both driven by
  tools/run_study.py on the spec of the paper's Table 1 study - and the
  same tool turns the outputs into the table. Tiny widths come from child
  configs (test plumbing only).
"""
import copy
import csv
import json
import math
import os.path as osp
import sys

import pytest
import torch
from e2e_utils import POTSDAM_CLASSES, REPO, run, \
    scalars
from mmengine.config import Config

CONFIG_DIR = osp.join(REPO, 'configs', 'ct')
MODELS = ('dcswin', 'unetformer', 'dcpoolformer')
VARIANTS = {'': None, '_ct': 'cl', '_ct-infonce': 'infonce'}
CONFIGS = [f'{m}{v}_potsdam' for m in MODELS for v in VARIANTS]
CT_KEYS = {'runner_type', 'ct_head', 'custom_hooks'}
RUN_STUDY = osp.join(REPO, 'tools', 'run_study.py')

# The paper's protocol (section 4.1) and the authors' code
PAPER_LR = 8e-5
PAPER_BATCH = 32
PAPER_EPOCHS = 50
PAPER_GRAD_CLIP = 1.0
AUTHORS_WEIGHT_DECAY = 0.01  # torch AdamW default, used by the authors
AUTHORS_CE_SMOOTHING = 0.05
AUTHORS_DICE_SMOOTH = 0.05
AUTHORS_AUX_WEIGHT = 0.4  # GeoSeg's UnetFormerLoss
# ISPRS Potsdam and MMSeg's converter
TILE_SIZE = 6000
CLIP_SIZE = 512
TRAIN_TILES = 24
# Swin-T (Liu et al. 2021) and the four-stage backbones' strides
SWIN_T_DEPTHS = [2, 2, 6, 2]
NUM_STAGES = 4
STEM_STRIDE = 4
STAGE_STRIDES = [STEM_STRIDE * 2**i for i in range(NUM_STAGES)]


def config_path(name):
    return osp.join(CONFIG_DIR, f'{name}.py')


def load(name, imports=False):
    return Config.fromfile(config_path(name), import_custom_modules=imports)


def ct_mode(name):
    return VARIANTS[name[name.index('_'):-len('_potsdam')]]


# ----------------------------------------------------------- the protocol
def test_the_required_config_names_exist():
    for name in CONFIGS:
        assert osp.isfile(config_path(name)), name
    # the default CT config, DCSwin + CT, uses CL
    assert ct_mode('dcswin_ct_potsdam') == 'cl'


@pytest.mark.parametrize('name', CONFIGS)
def test_protocol_is_the_papers(name):
    cfg = load(name)
    crops_per_side = math.ceil(TILE_SIZE / CLIP_SIZE)
    train_crops = TRAIN_TILES * crops_per_side**2
    expected_iters = PAPER_EPOCHS * math.ceil(train_crops / PAPER_BATCH)
    assert cfg.potsdam_num_train_crops == train_crops
    assert cfg.train_cfg.max_iters == expected_iters
    # the per-GPU batch times the documented GPU count is the paper's batch
    assert cfg.train_dataloader.batch_size * cfg.num_gpus == PAPER_BATCH
    assert cfg.total_batch_size == PAPER_BATCH
    assert cfg.auto_scale_lr.base_batch_size == PAPER_BATCH

    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == PAPER_LR
    assert optimizer.weight_decay == AUTHORS_WEIGHT_DECAY
    assert cfg.optim_wrapper.clip_grad.max_norm == PAPER_GRAD_CLIP
    assert 'paramwise_cfg' not in cfg.optim_wrapper
    assert cfg.param_scheduler is None  # constant lr

    data = cfg.train_dataloader.dataset
    assert data.type == 'PotsdamDataset'
    assert data.data_prefix.img_path == 'img_dir/train'
    assert cfg.test_dataloader.dataset.data_prefix.img_path == 'img_dir/val'
    assert cfg.test_evaluator.type == 'PerClassIoUMetric'
    assert cfg.test_evaluator.mean_exclude == ['clutter']

    ce, dice = cfg.model.decode_head.loss_decode
    assert (ce.type, ce.smooth_factor, ce.loss_weight) == (
        'SoftCrossEntropyLoss', AUTHORS_CE_SMOOTHING, 1.0)
    assert (dice.type, dice.smooth, dice.loss_weight) == (
        'SoftDiceLoss', AUTHORS_DICE_SMOOTH, 1.0)
    assert cfg.model.backbone.get('init_cfg') is None  # nothing downloaded


def test_backbones_and_heads():
    swin = load('dcswin_potsdam').model
    assert swin.backbone.type == 'SwinTransformer'
    assert swin.backbone.depths == SWIN_T_DEPTHS
    assert swin.decode_head.type == 'DCSwinHead'
    assert swin.decode_head.in_channels == [
        swin.backbone.embed_dims * 2**i for i in range(NUM_STAGES)]
    unet = load('unetformer_potsdam').model
    assert unet.backbone == swin.backbone
    assert unet.decode_head.type == 'UNetFormerHead'
    assert unet.auxiliary_head.type == 'UNetFormerAuxHead'
    assert unet.auxiliary_head.loss_decode.loss_weight == AUTHORS_AUX_WEIGHT
    pool = load('dcpoolformer_potsdam')
    assert pool.model.backbone.type == 'mmpretrain.PoolFormer'
    assert pool.model.backbone.arch == 's12'
    # the stages are the even entries of PoolFormer.network (odd: downsampling)
    assert list(pool.model.backbone.out_indices) == [
        2 * i for i in range(NUM_STAGES)]
    assert pool.model.decode_head.type == 'DCSwinHead'
    assert pool.custom_imports.imports[0] == 'mmpretrain.models'
    assert set(load('dcswin_potsdam').custom_imports.imports) < set(
        pool.custom_imports.imports)


# ------------------------------------------------ CT only through the keys
@pytest.mark.parametrize('model', MODELS)
def test_ct_configs_differ_from_baseline_only_in_ct_keys(model):
    base = load(f'{model}_potsdam').to_dict()
    assert not CT_KEYS & set(base)
    for variant in ('_ct', '_ct-infonce'):
        ct = load(f'{model}{variant}_potsdam').to_dict()
        assert set(ct) - set(base) == CT_KEYS
        assert set(base) - set(ct) == set()
        for key in base:
            assert ct[key] == base[key], key
        assert ct['runner_type'] == 'ct_mmseg.CTRunner'
        loss = ct['ct_head']['loss_decode']
        assert loss['mode'] == VARIANTS[variant]
        assert loss['clip_mode'] == 'clamp'  # the authors' clamp
        # the authors' CL keeps a random half of its pairs (their sort runs
        # over a size-1 dimension); their InfoNCE keeps the hardest half
        assert loss['pair_selection'] == ('random' if variant == '_ct'
                                          else 'hardest')
    # and the two CT variants differ only in the loss mode and the CL pair
    # selection
    cl = load(f'{model}_ct_potsdam').to_dict()
    nce = load(f'{model}_ct-infonce_potsdam').to_dict()
    for key in ('mode', 'pair_selection'):
        nce['ct_head']['loss_decode'][key] = cl['ct_head']['loss_decode'][key]
    assert nce == cl


# ------------------------------------------------------ the models build
@pytest.mark.parametrize('model', MODELS)
def test_full_size_models_build_and_ct_fits_the_backbone(model):
    """Full-size models: the baseline builds; for the CT configs the CT
    runner's injection measures the real backbone, and the widths it finds
    are the ones the decode head was configured with (so the decoder fits
    the backbone too). The tiny e2e runs below build and train all nine."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS as REGISTRY

    from ct_mmseg.config_injection import add_ct_to_config

    init_default_scope('mmseg')
    cfg = load(f'{model}_potsdam', imports=True)
    net = REGISTRY.build(cfg.model)
    assert net.decode_head.num_classes == cfg.num_classes
    widths = list(cfg.model.decode_head.in_channels)
    for variant in ('_ct', '_ct-infonce'):
        ct_cfg = load(f'{model}{variant}_potsdam', imports=True)
        add_ct_to_config(ct_cfg)  # what CTRunner does before building
        aux = ct_cfg.model.auxiliary_head
        head = aux[-1] if isinstance(aux, list) else aux
        assert head.type == 'ContrastiveTransformerHead'
        assert head.in_channels == widths  # all four stages, measured
        assert head.strides == STAGE_STRIDES
        assert head.num_classes == cfg.num_classes
        assert head.loss_decode.mode == VARIANTS[variant]
        assert ct_cfg.model.type == 'CTEncoderDecoder'


# --------------------------------------------- 9 configs x MMSeg's tools
# Test plumbing only: tiny widths, 64 px crops, the demo data, 2 iterations.
TINY_COMMON = '''
data_root = {data_root!r}
crop_size = (64, 64)
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomCrop', crop_size=crop_size),
        dict(type='PackSegInputs')]))
val_dataloader = dict(num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=crop_size, keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')]))
test_dataloader = val_dataloader
train_cfg = dict(val_interval=1000)  # no validation during 2 iterations
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
'''
TINY_WIDTHS = [16, 32, 64, 128]
TINY_MODEL = {
    'dcswin': dict(
        backbone=dict(embed_dims=TINY_WIDTHS[0], depths=[1, 1, 1, 1],
                      num_heads=[1, 2, 4, 8]),
        decode_head=dict(in_channels=TINY_WIDTHS)),
    'unetformer': dict(
        backbone=dict(embed_dims=TINY_WIDTHS[0], depths=[1, 1, 1, 1],
                      num_heads=[1, 2, 4, 8]),
        decode_head=dict(in_channels=TINY_WIDTHS, channels=16, num_heads=2),
        auxiliary_head=dict(in_channels=TINY_WIDTHS, channels=16)),
    'dcpoolformer': dict(
        # _delete_: replaces the base's arch='s12' (a str) by a dict
        backbone=dict(arch=dict(_delete_=True, layers=[1, 1, 1, 1],
                                embed_dims=TINY_WIDTHS)),
        decode_head=dict(in_channels=TINY_WIDTHS)),
}
TINY_ITERS = 2
TINY_BATCH = 2
# Through the study's --cfg-options passthrough (and so into every run).
GRID_OPTIONS = [f'train_cfg.max_iters={TINY_ITERS}',
                f'train_dataloader.batch_size={TINY_BATCH}']
SEED = 0
GRID_JOBS = 2


def write_tiny_config(folder, name, data_root):
    """``folder/<name>.py``: the real config + tiny widths and demo data."""
    model = copy.deepcopy(TINY_MODEL[name.split('_')[0]])
    model['data_preprocessor'] = dict(size=(64, 64))
    text = (f'_base_ = [{config_path(name)!r}]\n' +
            TINY_COMMON.format(data_root=data_root) +
            f'model = {model!r}\n')
    path = osp.join(folder, f'{name}.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


@pytest.fixture(scope='module')
def grid(tmp_path_factory, demo_data):
    """The 9 tiny configs run once through tools/run_study.py, as the arms
    of studies/potsdam_table1.yaml with the tiny configs in place of the
    real ones."""
    import yaml
    root = tmp_path_factory.mktemp('potsdam_grid')
    data_root = demo_data
    with open(osp.join(REPO, 'studies', 'potsdam_table1.yaml')) as f:
        spec = yaml.safe_load(f)
    configs = [write_tiny_config(str(root), n, data_root) for n in CONFIGS]
    assert [arm['name'] for arm in spec['arms']] == CONFIGS
    for arm, config in zip(spec['arms'], configs):
        arm['config'] = config
    spec.update(seeds=[SEED], work_root=str(root / 'work'),
                output=str(root / 'out'))
    spec_file = root / 'potsdam_tiny.json'
    spec_file.write_text(json.dumps(spec))
    # two runs at a time (each a train.py then a test.py process)
    log = run([sys.executable, RUN_STUDY, spec_file, '--jobs', GRID_JOBS,
               '--paper', '--cfg-options', *GRID_OPTIONS], cwd=root,
              timeout=900)
    return dict(root=root, work_root=str(root / 'work'), configs=configs,
                spec=str(spec_file), output=root / 'out', log=log)


def run_folder(grid, name):
    return osp.join(grid['work_root'], name, f'seed{SEED}')


@pytest.mark.parametrize('name', CONFIGS)
def test_each_config_trains_and_tests_through_mmseg_tools(grid, name):
    work = run_folder(grid, name)
    records = [r for r in scalars(work) if 'loss' in r]
    assert [r['step'] for r in records] == list(range(1, TINY_ITERS + 1))
    for record in records:
        assert math.isfinite(record['loss'])
        # the joint segmentation loss, both parts
        assert 'decode.loss_ce' in record and 'decode.loss_dice' in record
        ct_keys = [k for k in record if '.loss_ct_s' in k]
        if ct_mode(name) is None:
            assert not ct_keys
        else:
            assert sorted(k.rsplit('_s', 1)[1] for k in ct_keys) == [
                str(i) for i in range(NUM_STAGES)]
        if name.startswith('unetformer'):  # UNetFormerAuxHead's soft CE
            aux = 'aux.loss_ce' if ct_mode(name) is None else 'aux_0.loss_ce'
            assert aux in record
    assert osp.isfile(osp.join(work, f'iter_{TINY_ITERS}.pth'))
    dumped = Config.fromfile(osp.join(work, f'{name}.py'),
                             import_custom_modules=False)
    assert dumped.randomness.seed == SEED
    assert dumped.train_dataloader.batch_size == TINY_BATCH
    with open(osp.join(work, 'test', 'per_class_iou.json')) as f:
        results = json.load(f)
    assert tuple(results['classes']) == POTSDAM_CLASSES
    assert set(results['iou']) == set(POTSDAM_CLASSES)


def checkpoint_keys(path):
    import torch
    # our own test checkpoint (MMEngine's message hub is pickled in it)
    return set(torch.load(path, map_location='cpu',
                          weights_only=False)['state_dict'])


@pytest.mark.parametrize('model', MODELS)
def test_ct_checkpoints_hold_the_baseline_plus_the_ct_head(grid, model):
    """A trained CT model's checkpoint holds the baseline's state dict under
    the baseline's names (the plain model loads it), and the CT head's
    projectors in its ct_mmseg section, under the training model's names:
    with a baseline auxiliary head (UNetFormer) the auxiliary heads are a
    list there, so CT is auxiliary_head.1."""
    ckpt = f'iter_{TINY_ITERS}.pth'
    base = checkpoint_keys(osp.join(run_folder(grid, f'{model}_potsdam'),
                                    ckpt))
    has_aux = any(k.startswith('auxiliary_head.') for k in base)
    ct_prefix = 'auxiliary_head.1.' if has_aux else 'auxiliary_head.'
    for variant in ('_ct', '_ct-infonce'):
        path = osp.join(run_folder(grid, f'{model}{variant}_potsdam'), ckpt)
        assert checkpoint_keys(path) == base
        section = torch.load(path, map_location='cpu',
                             weights_only=True)['ct_mmseg']
        assert section['layout'] == ('single' if has_aux else 'none')
        assert section['state_dict'] and all(
            k.startswith(ct_prefix + 'projectors.')
            for k in section['state_dict'])


def test_grid_skips_finished_runs(grid):
    table = (grid['output'] / 'table.md').read_text()
    log = run([sys.executable, RUN_STUDY, grid['spec'], '--paper',
               '--cfg-options', *GRID_OPTIONS], cwd=grid['root'])
    assert 'train.py' not in log and 'test.py' not in log
    assert log.count('| finished earlier (') == len(CONFIGS)
    # the same results, the same table
    assert (grid['output'] / 'table.md').read_text() == table


def test_table_from_the_grid_outputs(grid):
    assert 'clutter excluded' in grid['log']
    with open(grid['output'] / 'table.csv') as f:
        rows = list(csv.DictReader(f))
    ours = [r for r in rows if r['source'] == 'ours']
    assert [r['arm'] for r in ours] == CONFIGS  # the spec's (paper's) order
    labels = {'dcswin': ('DCSwin', 'Swin'),
              'unetformer': ('UnetFormer', 'Swin'),
              'dcpoolformer': ('DCPoolFormer', 'PoolFormer')}
    losses = {None: '-', 'cl': 'CL', 'infonce': 'InfoNCE'}
    for row in ours:
        name = row['arm']
        assert (row['model'], row['backbone']) == labels[name.split('_')[0]]
        assert row['ct_loss'] == losses[ct_mode(name)]
        with open(osp.join(run_folder(grid, name), 'test',
                           'per_class_iou.json')) as f:
            iou = json.load(f)['iou']
        five = [iou[c] for c in POTSDAM_CLASSES if c != 'clutter']
        five = [v for v in five if v is not None]
        assert float(row['miou_mean']) == pytest.approx(
            sum(five) / len(five), abs=1e-6)
        assert row['miou_std'] == ''  # one seed: n/a
        assert row['num_seeds'] == '1'
        # one seed per arm: a difference to the baseline, but no test
        assert row['test'] == ('' if ct_mode(name) is None else 'none')
    # each of ours is followed by the paper's row of the same model and loss
    assert len(rows) == 2 * len(CONFIGS)
    for ours_row, paper_row in zip(rows[::2], rows[1::2]):
        assert paper_row['source'] == 'paper'
        assert (paper_row['model'], paper_row['ct_loss']) == (
            ours_row['model'], ours_row['ct_loss'])
    assert (grid['output'] / 'table.md').read_text().count(
        '| ours |') == len(CONFIGS)
