"""ADCLR through the tools, on the CPU: `mim train mmpretrain` on the tiny
config, the converter, then a CT segmentation training started from the
checkpoint (`mim train mmsegmentation`); and every configs/adclr config
builds."""
import glob
import math
import os.path as osp
import sys

import pytest
from e2e_utils import MIM, REPO, run, scalars

ADCLR_CONFIGS = osp.join(REPO, 'configs', 'adclr')
TINY = osp.join(ADCLR_CONFIGS,
                'adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py')
SEG = osp.join(ADCLR_CONFIGS, 'vit-tiny_upernet_ct_adclr-pre_potsdam-demo.py')


def test_mim_pretrain_then_ct_finetune_through_the_handoff(
        demo_data, tmp_path):
    # 1. ADCLR on a folder of unlabelled images (the demo tiles, no labels)
    pretrain = tmp_path / 'adclr'
    run([MIM, 'train', 'mmpretrain', TINY, '--work-dir', pretrain,
         '--cfg-options',
         f'train_dataloader.dataset.data_root={demo_data}/img_dir/train',
         'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False', 'train_cfg.max_iters=3',
         'default_hooks.checkpoint.interval=3',
         'default_hooks.logger.interval=1'], cwd=tmp_path)
    records = [r for r in scalars(pretrain) if 'loss' in r]
    assert [r['step'] for r in records] == [1, 2, 3]
    for record in records:
        assert math.isfinite(record['loss_cls'])
        assert math.isfinite(record['loss_query'])
        assert record['loss'] == pytest.approx(
            record['loss_cls'] + record['loss_query'], rel=1e-4)
    checkpoint = pretrain / 'iter_3.pth'
    assert checkpoint.exists()

    # 2. the converter (its command line), checked against the
    # segmentation config's backbone
    vit = tmp_path / 'vit_mmseg.pth'
    log = run([sys.executable, osp.join(REPO, 'tools', 'adclr_to_mmseg.py'),
               checkpoint, vit, '--check-config', SEG], cwd=tmp_path)
    assert '(0 missing, 0 unexpected keys)' in log

    # 3. CT training of MMSeg's ViT + UPerNet, backbone from the checkpoint
    segment = tmp_path / 'seg'
    data = [f'{loader}.dataset.data_root={demo_data}'
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader')]
    log = run([MIM, 'train', 'mmsegmentation', SEG, '--work-dir', segment,
               '--cfg-options', f'model.pretrained={vit}', *data,
               'train_dataloader.batch_size=2',
               'train_dataloader.num_workers=0', 'val_dataloader=None',
               'val_cfg=None', 'val_evaluator=None', 'train_cfg.max_iters=2',
               'default_hooks.logger.interval=1'], cwd=tmp_path)
    assert f'Pretrained backbone: all 54 tensors of {vit} loaded ' \
        '(0 missing, 0 unexpected keys)' in log
    records = [r for r in scalars(segment) if 'loss' in r]
    assert len(records) == 2
    for record in records:
        assert all(math.isfinite(record[f'aux_1.loss_ct_s{i}'])
                   for i in range(4))


def pretraining_configs():
    return sorted(glob.glob(osp.join(ADCLR_CONFIGS, '[ad][di]*.py')))


@pytest.mark.parametrize('config', pretraining_configs(),
                         ids=lambda path: osp.basename(path)[:-3])
def test_pretraining_config_builds(config):
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from ct_mmseg.adclr import ADCLR, DINO
    cfg = Config.fromfile(config)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
    assert isinstance(model, DINO)
    views = cfg.train_dataloader.dataset.get('pipeline') or \
        cfg.train_dataloader.dataset.datasets[0].pipeline
    multi_view = views[1]
    assert sum(multi_view.num_views) == 2 + model.num_local_views + \
        model.num_queries
    assert isinstance(model, ADCLR) == osp.basename(config).startswith(
        'adclr')
    if 'dubai' in config:
        folders = [d.data_root for d in cfg.train_dataloader.dataset.datasets]
        # the Dubai converter's training tiles only
        from ct_mmseg.datasets.dubai_aerial import DEFAULT_SPLIT
        assert [f.split('/')[-2] for f in folders] == \
            [f'Tile {t}' for t in DEFAULT_SPLIT['train']]
