"""Adding CT changes nothing but CT.

With the same seed, a config and its CT variant must start from the same
weights in every module they share, see the same batches (data order and
augmentations) and leave torch's, numpy's and Python's global random
generators in the same state before and after every training iteration, so
that dropout and drop-path masks stay aligned and an A/B test of CT compares
CT alone.

Each pair is built and trained for a few iterations in this process through
MMSeg's runner selection (``runner_type`` -> ``RUNNERS.build``, as MMSeg's
``tools/train.py`` does): the fragment with ``CTRunner`` and with
``CTFlexibleRunner``, and a CT head written by hand into the model. A probe
hook records, after ``init_weights()`` and around every iteration, the
parameters and buffers, the batch and the three global RNG states.
"""
import copy
import hashlib
import itertools
import os.path as osp
import pickle
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from PIL import Image

from e2e_utils import DEMO, FRAGMENT, REPO, TOOLS

STUDY = osp.join(REPO, 'configs', 'study', 'dubai')
_names = itertools.count()


def _digest(*arrays) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def global_rng_states() -> dict:
    """Digests of torch's, numpy's and Python's global generator states."""
    return dict(torch=_digest(torch.get_rng_state().numpy()),
                numpy=_digest(np.random.get_state()[1]),
                python=hashlib.sha1(
                    pickle.dumps(random.getstate())).hexdigest())


class ProbeHook(Hook):
    """Records what a CT variant must share with its baseline."""

    priority = 'VERY_LOW'  # after every other hook of the same stage

    def __init__(self):
        self.initial = None
        self.events = []

    def before_train(self, runner):
        model = runner.model
        model = getattr(model, 'module', model)
        self.initial = {k: v.detach().clone()
                        for k, v in model.state_dict().items()}
        self.events.append(('before_train', global_rng_states()))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        inputs = [x.numpy() for x in data_batch['inputs']]
        gts = [s.gt_sem_seg.data.numpy() for s in data_batch['data_samples']]
        paths = [s.img_path for s in data_batch['data_samples']]
        self.events.append(('batch', paths, _digest(*inputs, *gts)))
        self.events.append(('before_iter', global_rng_states()))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.events.append(('after_iter', global_rng_states()))


def train_and_probe(cfg: Config, work_dir: str, iters: int = 3
                    ) -> ProbeHook:
    """Build the runner as MMSeg's tools/train.py does, train ``iters``
    iterations with a :class:`ProbeHook`, return the hook."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'matched_{next(_names)}'  # one per runner
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=10**6)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks = dict(
        logger=dict(type='LoggerHook', interval=1),
        checkpoint=dict(type='CheckpointHook', interval=10**6))
    cfg.visualizer = dict(type='SegLocalVisualizer', vis_backends=[])
    cfg.optim_wrapper = dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
    cfg.param_scheduler = []
    probe = ProbeHook()
    if cfg.get('runner_type') is None:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.register_hook(probe)
    runner.train()
    return probe


def shared_key(key: str, ct_aux_list: bool) -> str:
    """A baseline parameter's name in its CT variant: a single auxiliary
    head becomes entry 0 of the [head, CT] list."""
    if ct_aux_list and key.startswith('auxiliary_head.'):
        return 'auxiliary_head.0.' + key[len('auxiliary_head.'):]
    return key


def assert_only_ct_differs(base: ProbeHook, ct: ProbeHook):
    ct_aux_list = any(k.startswith('auxiliary_head.1.') for k in ct.initial)
    names = {shared_key(k, ct_aux_list): k for k in base.initial}
    assert set(names) <= set(ct.initial), 'CT variant lacks baseline keys'
    extra = set(ct.initial) - set(names)
    assert extra and all('projectors' in k for k in extra), sorted(extra)
    differ = [k for ct_key, k in names.items()
              if not torch.equal(base.initial[k], ct.initial[ct_key])]
    assert not differ, (f'{len(differ)} of {len(names)} shared tensors '
                        f'start from other values: {differ[:5]}')
    assert len(base.events) == len(ct.events)
    for seen_base, seen_ct in zip(base.events, ct.events):
        assert seen_base == seen_ct, (seen_base, seen_ct)


# --------------------------------------------------------------- data
def write_dubai(root) -> str:
    """Four converted-layout Dubai crops (RGB PNG + class-index PNG)."""
    rng = np.random.default_rng(0)
    for split in ('train',):
        for i in range(4):
            for folder in ('img_dir', 'ann_dir'):
                (root / folder / split).mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 255, (160, 160, 3), dtype=np.uint8)
            label = rng.integers(0, 5, (160, 160), dtype=np.uint8)
            label[:40, :40] = 255
            Image.fromarray(image).save(root / 'img_dir' / split / f'{i}.png')
            Image.fromarray(label).save(root / 'ann_dir' / split / f'{i}.png')
    return str(root)


def write_ade(root) -> str:
    """Four ADE20K-layout images (JPEG) and annotations (PNG, 0 = other)."""
    rng = np.random.default_rng(1)
    (root / 'images' / 'training').mkdir(parents=True)
    (root / 'annotations' / 'training').mkdir(parents=True)
    for i in range(4):
        image = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
        label = rng.integers(0, 12, (96, 96), dtype=np.uint8)
        Image.fromarray(image).save(
            root / 'images' / 'training' / f'ADE_{i}.jpg')
        Image.fromarray(label).save(
            root / 'annotations' / 'training' / f'ADE_{i}.png')
    return str(root)


def load(path, **changes) -> Config:
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(changes)
    return cfg


SEEDS = (0, 1)


# -------------------------------------------------------------- tests
@pytest.mark.parametrize('seed', SEEDS)
def test_dubai_study_pair(tmp_path, seed):
    """The Dubai study's baseline and CT-CL arm (DCSwin, dropout in the
    decode head): only the CT head differs."""
    data = write_dubai(tmp_path / 'dubai')
    changes = {'randomness.seed': seed, 'train_dataloader.batch_size': 2,
               'train_dataloader.num_workers': 0,
               'train_dataloader.dataset.data_root': data}
    base = train_and_probe(load(osp.join(STUDY, 'dcswin_dubai.py'),
                                **changes), str(tmp_path / 'base'))
    ct = train_and_probe(load(osp.join(STUDY, 'dcswin_ct_dubai.py'),
                              **changes), str(tmp_path / 'ct'))
    assert_only_ct_differs(base, ct)


# a tiny Swin UPerNet (the demo's and the stock ADE20K config's model)
DEMO_CHANGES = {
    'train_dataloader.batch_size': 2, 'train_dataloader.num_workers': 0,
    'model.backbone.embed_dims': 16, 'model.backbone.depths': [1, 1, 1, 1],
    'model.backbone.num_heads': [1, 2, 4, 8],
    'model.decode_head.in_channels': [16, 32, 64, 128],
    'model.decode_head.channels': 16,
    'model.auxiliary_head.in_channels': 64,
    'model.auxiliary_head.channels': 16}


@pytest.mark.parametrize('seed', SEEDS)
def test_demo_pair(tmp_path, demo_data, seed):
    """The demo's Swin UPerNet pair (drop path 0.1 and dropout on), the
    fragment through CTRunner."""
    changes = dict(DEMO_CHANGES, **{
        'randomness.seed': seed,
        'train_dataloader.dataset.data_root': demo_data})
    base = train_and_probe(
        load(osp.join(DEMO, 'swin-tiny_upernet_potsdam-demo.py'), **changes),
        str(tmp_path / 'base'))
    ct = train_and_probe(
        load(osp.join(DEMO, 'swin-tiny_upernet_ct_potsdam-demo.py'),
             **changes), str(tmp_path / 'ct'))
    assert_only_ct_differs(base, ct)


def test_demo_pair_flexible_runner(tmp_path, demo_data):
    """The same pair through MMEngine's FlexibleRunner and
    CTFlexibleRunner."""
    changes = dict(DEMO_CHANGES, **{
        'randomness.seed': 3,
        'train_dataloader.dataset.data_root': demo_data})
    base = load(osp.join(DEMO, 'swin-tiny_upernet_potsdam-demo.py'),
                runner_type='FlexibleRunner', **changes)
    ct = load(osp.join(DEMO, 'swin-tiny_upernet_ct_potsdam-demo.py'),
              runner_type='ct_mmseg.CTFlexibleRunner', **changes)
    assert_only_ct_differs(train_and_probe(base, str(tmp_path / 'base')),
                           train_and_probe(ct, str(tmp_path / 'ct')))


def test_head_written_by_hand(tmp_path, demo_data):
    """No fragment: the CT head listed by hand beside the FCN head, the
    plain runner."""
    changes = dict(DEMO_CHANGES, **{
        'randomness.seed': 1,
        'train_dataloader.dataset.data_root': demo_data})
    base = load(osp.join(DEMO, 'swin-tiny_upernet_potsdam-demo.py'),
                **changes)
    by_hand = copy.deepcopy(base)
    by_hand.custom_imports = dict(imports=['ct_mmseg'],
                                  allow_failed_imports=False)
    by_hand.model.type = 'CTEncoderDecoder'
    by_hand.model.auxiliary_head = [
        base.model.auxiliary_head,
        dict(type='ContrastiveTransformerHead', in_channels=[16, 32, 64, 128],
             strides=[4, 8, 16, 32], num_classes=6)]
    assert_only_ct_differs(
        train_and_probe(base, str(tmp_path / 'base')),
        train_and_probe(by_hand, str(tmp_path / 'ct')))


@pytest.mark.parametrize('seed', SEEDS)
def test_stock_mmseg_config_with_fragment(tmp_path, seed):
    """MMSeg's own Swin-T UPerNet ADE20K config, with and without the
    fragment (made tiny on the command line's way: cfg options)."""
    data = write_ade(tmp_path / 'ade')
    stock = 'mmseg::swin/' \
        'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
    ct_config = tmp_path / 'stock_ct.py'
    ct_config.write_text(f'_base_ = [{stock!r}, {FRAGMENT!r}]\n')
    changes = dict(DEMO_CHANGES, **{
        'randomness.seed': seed,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.data_root': data,
        'train_dataloader.dataset.pipeline.2.scale': (96, 96),
        'train_dataloader.dataset.pipeline.3.crop_size': (64, 64),
        'model.data_preprocessor.size': (64, 64),
        'model.backbone.init_cfg': None})
    stock_file = osp.join(osp.dirname(TOOLS), 'configs',
                          stock[len('mmseg::'):])
    base = train_and_probe(load(stock_file, **changes),
                           str(tmp_path / 'base'), iters=2)
    ct = train_and_probe(load(str(ct_config), **changes),
                         str(tmp_path / 'ct'), iters=2)
    assert_only_ct_differs(base, ct)
