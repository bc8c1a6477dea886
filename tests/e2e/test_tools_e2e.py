"""The whole path through MMSeg's own tools on the CPU.

* the demo data (raw ISPRS zips -> MMSeg's converter -> PotsdamDataset);
* MMSeg's tools/train.py on a tiny CT config, per-stage CT losses in the log;
* MMSeg's tools/test.py on the checkpoint (per-class IoU printed);
* --resume from the checkpoint (weights_only loading on torch >= 2.6);
* `mim train mmsegmentation` on *stock* Swin-T and PoolFormer-S12 configs
  that inherit only the CT fragment (test plumbing - data, size, offline
  init - goes through --cfg-options, not into the config).
"""
import glob
import math
import os.path as osp
import sys

import pytest
from e2e_utils import (FRAGMENT, MIM, POTSDAM_CLASSES, TOOLS, run, scalars,
                       tiny_config)


def test_demo_data_is_potsdam_through_mmseg(demo_data):
    from mmseg.datasets import PotsdamDataset
    dataset = PotsdamDataset(data_root=demo_data, data_prefix=dict(
        img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=[])
    assert len(dataset) == 2 and dataset.metainfo['classes'] == POTSDAM_CLASSES


def test_train_test_resume_through_mmseg_tools(demo_data, tmp_path):
    cfg = tiny_config(tmp_path, demo_data)
    work = tmp_path / 'work'
    log = run([sys.executable, osp.join(TOOLS, 'train.py'), cfg,
               '--work-dir', work], cwd=tmp_path)
    assert 'Contrastive Transformer: stages in_index=[0, 1, 2, 3] ' \
        'channels=[16, 32, 64, 128] strides=[4, 8, 16, 32]' in log
    train_records = [r for r in scalars(work) if 'loss' in r]
    assert [r['step'] for r in train_records] == [1, 2, 3, 4]
    for record in train_records:
        for stage in range(4):
            value = record[f'aux_1.loss_ct_s{stage}']
            assert math.isfinite(value) and value >= 0
        # the CT losses count in the total that is optimised
        parts = sum(v for k, v in record.items()
                    if 'loss' in k and k != 'loss')
        assert record['loss'] == pytest.approx(parts, rel=1e-3)
    assert any(r.get('aux_1.loss_ct_s0', 0) > 0 for r in train_records)
    assert (work / 'iter_4.pth').exists()
    # CT statistics (ContrastiveTransformerHook) in the JSON scalars ...
    stat_keys = [f'ct_s{s}/{k}' for s in range(4) for k in
                 ('pos', 'neg', 'pairs', 'cos_pos', 'cos_neg', 'no_pos')]
    for record in train_records:
        assert all(math.isfinite(record[k]) for k in stat_keys)
        assert record['ct_s0/pos'] > 0 and record['ct_s0/neg'] > 0
    assert 'ct_s3/no_pos:' in log  # ... in the text log ...
    # ... and in TensorBoard's event file
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    events = glob.glob(osp.join(work, '*', 'vis_data', 'events.out.*'))
    assert events
    tags = EventAccumulator(events[0]).Reload().Tags()['scalars']
    assert set(stat_keys + ['aux_1.loss_ct_s0']) <= set(tags)

    # MMSeg's tools/test.py on the fragment config: it builds the plain
    # (inference) model; per-class IoU of the six Potsdam classes is printed.
    log = run([sys.executable, osp.join(TOOLS, 'test.py'), cfg,
               work / 'iter_4.pth', '--work-dir', tmp_path / 'test'],
              cwd=tmp_path)
    assert 'mIoU' in log and all(name in log for name in POTSDAM_CLASSES)
    # the checkpoint holds the plain model's keys (CTCheckpointHook)
    assert 'unexpected key' not in log and 'missing keys' not in log
    # ... and `mim test` on the config the runner dumped (CT head included:
    # the checkpoint loads strictly).
    dumped = work / 'tiny_ct.py'
    log = run([MIM, 'test', 'mmsegmentation', dumped, '--checkpoint',
               work / 'iter_4.pth', '--work-dir', tmp_path / 'test2'],
              cwd=tmp_path)
    assert 'mIoU' in log and 'unexpected key' not in log
    assert 'missing keys' not in log

    # --resume: continues from iter_4 to iter_6, loading with weights_only.
    log = run([sys.executable, osp.join(TOOLS, 'train.py'), cfg,
               '--work-dir', work, '--resume', '--cfg-options',
               'train_cfg.max_iters=6', 'train_cfg.val_interval=6'],
              cwd=tmp_path)
    assert 'resumed epoch: 0, iter: 4' in log
    assert (work / 'iter_6.pth').exists()
    steps = [r['step'] for r in scalars(work) if 'loss' in r]
    assert steps[-2:] == [5, 6]


def stock_plumbing(dataset_key, data_root):
    """--cfg-options that make a stock ADE20K config run here: offline (no
    ImageNet download), on the demo Potsdam (6 classes), 2 CPU iterations."""
    data = f'train_dataloader.{dataset_key}'
    return [
        'model.backbone.init_cfg=None',
        f'{data}.type=PotsdamDataset', f'{data}.data_root={data_root}',
        f'{data}.data_prefix.img_path=img_dir/train',
        f'{data}.data_prefix.seg_map_path=ann_dir/train',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
        'test_dataloader=None', 'test_cfg=None', 'test_evaluator=None',
        'train_cfg.max_iters=2', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2',
        'model.decode_head.num_classes=6',
    ]


@pytest.mark.parametrize('stock,dataset_key,extra,ct_key', [
    ('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',  # noqa
     'dataset', ['model.backbone.depths=[1,1,1,1]',
                 'model.auxiliary_head.num_classes=6'], 'aux_1.loss_ct_s'),
    # its train set is a RepeatDataset; AmpOptimWrapper needs a GPU
    ('mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
     'dataset.dataset', ['optim_wrapper.type=OptimWrapper'], 'aux.loss_ct_s'),
], ids=['swin-tiny', 'poolformer-s12'])
def test_mim_train_stock_config_with_fragment(demo_data, tmp_path, stock,
                                              dataset_key, extra, ct_key):
    user_cfg = tmp_path / 'user_ct.py'
    user_cfg.write_text(f'_base_ = [{stock!r}, {FRAGMENT!r}]\n')
    work = tmp_path / 'work'
    run([MIM, 'train', 'mmsegmentation', user_cfg, '--work-dir', work,
         '--cfg-options', *stock_plumbing(dataset_key, demo_data), *extra],
        cwd=tmp_path)
    records = [r for r in scalars(work) if 'loss' in r]
    assert len(records) == 2
    for record in records:
        stages = [record[f'{ct_key}{i}'] for i in range(4)]
        assert all(math.isfinite(v) for v in stages)
    assert (work / 'iter_2.pth').exists()
