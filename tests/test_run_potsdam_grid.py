"""tools/run_potsdam_grid.py: the commands it would run (--dry-run).

The real runs (MMSeg's train.py and test.py on all nine configs) are in
tests/test_potsdam_configs.py.
"""
import importlib.util
import os.path as osp
import re
import shlex

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CT_DIR = osp.join(REPO, 'configs', 'ct')
DCSWIN = osp.join(CT_DIR, 'dcswin_potsdam.py')
DCSWIN_CT = osp.join(CT_DIR, 'dcswin_ct_potsdam.py')
POOLFORMER = osp.join(CT_DIR, 'dcpoolformer_potsdam.py')


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'run_potsdam_grid', osp.join(REPO, 'tools', 'run_potsdam_grid.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grid = load_tool()


@pytest.fixture(scope='module')
def protocol():
    cfg = Config.fromfile(DCSWIN, import_custom_modules=False)
    return dict(max_iters=cfg.train_cfg.max_iters,
                total_batch=cfg.total_batch_size)


def dry_run(capsys, *args):
    assert grid.main([*map(str, args), '--dry-run']) == 0
    out = capsys.readouterr().out
    return [shlex.split(line[2:]) for line in out.splitlines()
            if line.startswith('$ ')], out


def option(cmd, key):
    """Value of ``key=`` among a command's --cfg-options (last wins)."""
    values = [a.split('=', 1)[1] for a in cmd if a.startswith(f'{key}=')]
    return values[-1] if values else None


def test_default_grid_is_nine_configs_by_three_seeds(capsys, tmp_path,
                                                     protocol):
    root = tmp_path / 'grid'
    cmds, _ = dry_run(capsys, '--work-root', root)
    trains = [c for c in cmds if c[1].endswith('train.py')]
    tests = [c for c in cmds if c[1].endswith('test.py')]
    configs, seeds = grid.DEFAULT_CONFIGS, grid.DEFAULT_SEEDS
    assert len(configs) == 9 and seeds == [0, 1, 2]
    assert len(trains) == len(tests) == len(configs) * len(seeds)
    expected = [(osp.abspath(c), s) for s in seeds for c in configs]
    assert [(osp.abspath(c[2]), int(option(c, 'randomness.seed')))
            for c in trains] == expected
    for cmd, (config, seed) in zip(trains, expected):
        name = osp.splitext(osp.basename(config))[0]
        work = str(root / name / f'seed{seed}')
        assert cmd[cmd.index('--work-dir') + 1] == work
        assert '--resume' not in cmd and '--launcher' not in cmd
        # CT's own draw seed follows the run's seed; baselines have no CT
        expected_ct_seed = str(seed) if '_ct' in name else None
        assert option(cmd, 'ct_head.seed') == expected_ct_seed
        # one GPU carries the whole batch of 32
        assert option(cmd, 'train_dataloader.batch_size') == str(
            protocol['total_batch'])
    for cmd, (config, seed) in zip(tests, expected):
        name = osp.splitext(osp.basename(config))[0]
        work = str(root / name / f'seed{seed}')
        # the config the training dumps, the final checkpoint
        assert cmd[2:4] == [osp.join(work, f'{name}.py'),
                            osp.join(work, f'iter_{protocol["max_iters"]}'
                                     '.pth')]
        assert option(cmd, 'test_evaluator.results_file') == osp.abspath(
            osp.join(work, 'test', 'per_class_iou.json'))


def test_multi_gpu_uses_torchrun_and_splits_the_batch(capsys, tmp_path,
                                                      protocol):
    gpus = 4
    cmds, out = dry_run(capsys, '--configs', DCSWIN, '--seeds', 0,
                        '--work-root', tmp_path, '--gpus', gpus)
    train, test = cmds
    for cmd in (train, test):
        assert cmd[1:3] == ['-m', 'torch.distributed.run']
        assert f'--nproc_per_node={gpus}' in cmd
        assert cmd[cmd.index('--launcher') + 1] == 'pytorch'
    per_gpu = protocol['total_batch'] // gpus
    assert option(train, 'train_dataloader.batch_size') == str(per_gpu)
    assert f'{gpus} GPU(s) x {per_gpu} = {protocol["total_batch"]}' in out
    with pytest.raises(SystemExit, match='divisible'):
        grid.main(['--configs', DCSWIN, '--gpus', '3', '--dry-run'])


def test_resume_skip_and_retest(capsys, tmp_path, protocol):
    args = ('--configs', DCSWIN, '--seeds', 0, '--work-root', tmp_path)
    work = tmp_path / 'dcswin_potsdam' / 'seed0'
    work.mkdir(parents=True)
    # an unfinished run with a checkpoint: resumed
    (work / 'last_checkpoint').write_text(str(work / 'iter_1080.pth'))
    (train, _), out = dry_run(capsys, *args)
    assert '--resume' in train and 'resuming' in out
    # finished (final checkpoint there): only the test
    (work / f'iter_{protocol["max_iters"]}.pth').write_bytes(b'')
    cmds, out = dry_run(capsys, *args)
    assert [c[1].endswith('test.py') for c in cmds] == [True]
    # tested too: nothing to do, unless --retest
    results = work / 'test' / 'per_class_iou.json'
    results.parent.mkdir()
    results.write_text('{}')
    cmds, out = dry_run(capsys, *args)
    assert cmds == [] and ': tested (' in out
    cmds, _ = dry_run(capsys, *args, '--retest')
    assert len(cmds) == 1 and cmds[0][1].endswith('test.py')


def test_cfg_options_pass_through_and_win(capsys, tmp_path):
    iters, batch = 7, 2
    cmds, _ = dry_run(capsys, '--configs', DCSWIN_CT, '--seeds', 5,
                      '--work-root', tmp_path, '--cfg-options',
                      f'train_cfg.max_iters={iters}',
                      f'train_dataloader.batch_size={batch}')
    train, test = cmds
    assert option(train, 'train_cfg.max_iters') == str(iters)
    # the user's batch replaces the grid's automatic split
    assert option(train, 'train_dataloader.batch_size') == str(batch)
    assert len([a for a in train
                if a.startswith('train_dataloader.batch_size=')]) == 1
    assert option(train, 'randomness.seed') == '5'
    assert test[3].endswith(f'iter_{iters}.pth')


def test_pretrained_paths_go_to_their_backbones(capsys, tmp_path):
    swin = tmp_path / 'swin_t.pth'
    pool = tmp_path / 'poolformer_s12.pth'
    swin.write_bytes(b'')
    pool.write_bytes(b'')
    cmds, _ = dry_run(capsys, '--configs', DCSWIN, POOLFORMER, '--seeds', 0,
                      '--work-root', tmp_path / 'grid', '--swin-pretrained',
                      swin, '--poolformer-pretrained', pool, '--no-test')
    swin_cmd, pool_cmd = cmds
    key = 'model.backbone.init_cfg'
    assert option(swin_cmd, f'{key}.checkpoint') == str(swin)
    assert option(swin_cmd, f'{key}.prefix') is None
    assert option(pool_cmd, f'{key}.checkpoint') == str(pool)
    assert option(pool_cmd, f'{key}.prefix') == 'backbone.'
    for cmd in cmds:
        assert option(cmd, f'{key}._delete_') == 'True'
        assert option(cmd, f'{key}.type') == 'Pretrained'
    # the options really replace the config's init_cfg=None
    cfg = grid.load_config(DCSWIN, [a for a in swin_cmd[
        swin_cmd.index('--cfg-options') + 1:]])
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint=str(swin))


def test_parallel_jobs_get_their_own_gpus_and_ports(capsys, tmp_path):
    jobs, gpus, port = 2, 2, 29500
    gpu_ids = list(range(jobs * gpus))
    lines_seen = 0
    assert grid.main(['--configs', DCSWIN, DCSWIN_CT, '--seeds', '0', '1',
                      '--work-root', str(tmp_path), '--jobs', str(jobs),
                      '--gpus', str(gpus), '--gpu-ids',
                      *map(str, gpu_ids), '--dry-run']) == 0
    for line in capsys.readouterr().out.splitlines():
        match = re.match(r'\$ CUDA_VISIBLE_DEVICES=([\d,]+) .*'
                         r'--master_port=(\d+) .*> (\S+)$', line)
        if not match:
            continue
        lines_seen += 1
        devices = [int(d) for d in match.group(1).split(',')]
        job = int(match.group(2)) - port
        assert devices == gpu_ids[job * gpus:(job + 1) * gpus]
        assert match.group(3).endswith(('grid_train.log', 'grid_test.log'))
    assert lines_seen == 2 * 2 * 2  # (train + test) x 2 configs x 2 seeds
    with pytest.raises(SystemExit):
        grid.main(['--configs', DCSWIN, '--jobs', '2', '--gpu-ids', '0',
                   '--dry-run'])


def test_configs_with_the_same_name_are_refused(tmp_path):
    other = tmp_path / 'dcswin_potsdam.py'
    other.write_text(f'_base_ = [{DCSWIN!r}]\n')
    with pytest.raises(SystemExit, match='share'):
        grid.main(['--configs', DCSWIN, str(other), '--dry-run'])
