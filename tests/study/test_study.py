"""ct_mmseg.study and its command line (ct_mmseg.study.cli, the body of
tools/run_study.py): the spec, the statistics against
values computed by hand, the paired / Welch choice, resume, the table, and
a study of two tiny runs through MMSeg's own tools.

The Potsdam study (the paper's Table 1) is in
tests/study/test_potsdam_study.py.
"""
import csv
import glob
import json
import math
import os
import os.path as osp
import re
import shlex
import sys

import pytest
from e2e_utils import DEMO, POTSDAM_CLASSES, REPO, run, tiny_config

from ct_mmseg import study as studies
from ct_mmseg.study import cli as tool

BASE_DEMO = osp.join(DEMO, 'swin-tiny_upernet_potsdam-demo.py')
CT_DEMO = osp.join(DEMO, 'swin-tiny_upernet_ct_potsdam-demo.py')
DEMO_ITERS = 200  # the demo configs' train_cfg.max_iters


def write_spec(folder, data, name='study.json'):
    path = osp.join(str(folder), name)
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def demo_spec(tmp_path, **extra):
    """A baseline and a CT arm on the demo configs, seeds 0 and 1."""
    data = dict(name='demo', seeds=[0, 1],
                work_root=str(tmp_path / 'work'),
                output=str(tmp_path / 'out'),
                arms=[dict(name='base', config=BASE_DEMO),
                      dict(name='ct', config=CT_DEMO, baseline='base')])
    data.update(extra)
    return write_spec(tmp_path, data)


# ------------------------------------------------------------------ spec
def test_yaml_spec_with_cfg_options_as_text_or_mapping(tmp_path):
    spec = tmp_path / 'clip.yaml'
    spec.write_text(f'''
seeds: [0, 1, 2]
cfg_options: [train_cfg.max_iters=100]
exclude_classes: [clutter]
arms:
  - name: base
    config: {BASE_DEMO}
  - name: ct_clamp
    config: {CT_DEMO}
    cfg_options: {{ct_head.loss_decode.clip_mode: clamp}}
    baseline: base
  - name: ct_scale
    config: {CT_DEMO}
    cfg_options:
      ct_head: {{loss_decode: {{clip_mode: scale, clip_value: 1.0}}}}
      model.backbone.depths: [1, 1, 1, 1]
      ct_head.proj_channels: null
    baseline: base
    seeds: [3, 4]
''')
    study = studies.load_spec(str(spec))
    # the file name is the default study name, and names the folders
    assert study.name == 'clip'
    assert study.work_root == osp.join('work_dirs', 'studies', 'clip')
    assert study.output == osp.join('studies', 'clip')
    assert study.cfg_options == ['train_cfg.max_iters=100']
    assert study.exclude_classes == ['clutter']
    base, clamp, scale = study.arms
    assert (base.baseline, clamp.baseline) == (None, 'base')
    assert base.seeds == clamp.seeds == [0, 1, 2] and scale.seeds == [3, 4]
    assert clamp.cfg_options == ['ct_head.loss_decode.clip_mode=clamp']
    # nested mappings become dotted keys; lists and None as DictAction
    # reads them back
    assert scale.cfg_options == ['ct_head.loss_decode.clip_mode=scale',
                                 'ct_head.loss_decode.clip_value=1.0',
                                 'model.backbone.depths=[1,1,1,1]',
                                 'ct_head.proj_channels=None']
    cfg = studies.load_config(CT_DEMO, scale.cfg_options)
    assert cfg.ct_head.loss_decode.clip_mode == 'scale'
    assert cfg.model.backbone.depths == [1, 1, 1, 1]
    assert cfg.ct_head.proj_channels is None
    assert study.result_file('ct_scale', 3) == osp.join(
        'studies', 'clip', 'runs', 'ct_scale', 'seed3.json')


ARM = dict(name='a', config='a.py')


@pytest.mark.parametrize('data, message', [
    (dict(seeds=[0], arms=[ARM], sedes=[1]), "unknown key 'sedes'"),
    (dict(seeds=[0], arms=[dict(ARM, baselin='a')]),
     r"arms\[0\] \(a\): unknown key 'baselin'"),
    (dict(seeds=[0], arms=[ARM, dict(ARM, config='b.py')]),
     r"arms\[1\] \(a\): name: another arm is called 'a'"),
    (dict(seeds=[0], arms=[ARM, dict(name='b', config='b.py',
                                     baseline='c')]),
     r"arms\[1\] \(b\): baseline: no arm is called 'c'"),
    (dict(seeds=[0], arms=[dict(ARM, baseline='a')]),
     'its own baseline'),
    (dict(arms=[ARM]), r"arms\[0\] \(a\): seeds: no seeds"),
    (dict(seeds=[0, 0], arms=[ARM]), 'seeds: seeds repeat'),
    (dict(seeds=['0'], arms=[ARM]), 'seeds: expected a non-empty list'),
    (dict(seeds=[0], arms=[dict(name='a/b', config='a.py')]),
     r"arms\[0\]: name: 'a/b'"),
    (dict(seeds=[0], arms=[dict(name='a')]), r'arms\[0\] \(a\): config:'),
    (dict(seeds=[0], arms=[dict(ARM, cfg_options=['max_iters'])]),
     r'arms\[0\] \(a\): cfg_options: expected "key=value"'),
    (dict(seeds=[0], arms=[ARM], cfg_options={'a': [{'b': 1}]}),
     'cfg_options: a dict value'),
    (dict(seeds=[0], arms=[]), 'arms: expected a non-empty list'),
    (dict(seeds=[0], arms=[ARM], work_root='out/work', output='out'),
     'work_root: .* is inside the output folder'),
    (dict(seeds=[0], arms=[ARM], split='train'), 'split: expected one of'),
    (dict(seeds=[0], arms=[ARM], stop=dict(arm='a', half_width=0.01)),
     "stop: arm: 'a' is not an arm with a baseline"),
    (dict(seeds=[0], arms=[ARM, dict(name='b', config='b.py',
                                     baseline='a')],
          stop=dict(arm='b', half_width=1.0)), 'stop: half_width: expected'),
    (dict(seeds=[0], arms=[ARM, dict(name='b', config='b.py',
                                     baseline='a')],
          stop=dict(arm='b', half_width=0.01, min_pairs=1)),
     'stop: min_pairs: expected an integer >= 2'),
    (dict(seeds=[0], arms=[ARM, dict(name='b', config='b.py',
                                     baseline='a')],
          stop=dict(arm='b', half_width=0.01, pairs=3)),
     "stop: unknown key 'pairs'"),
])
def test_spec_errors_name_the_bad_key(data, message):
    with pytest.raises(studies.SpecError, match=message):
        studies.parse_spec(data, source='s.yaml')


def test_spec_file_errors(tmp_path):
    with pytest.raises(studies.SpecError, match='not found'):
        studies.load_spec(str(tmp_path / 'missing.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('arms: [\n')
    with pytest.raises(studies.SpecError, match='bad.yaml: cannot be parsed'):
        studies.load_spec(str(bad))
    spec = write_spec(tmp_path, dict(seeds=[0], arms=[
        dict(name='a', config=str(tmp_path / 'nope.py'))]))
    with pytest.raises(studies.SpecError, match=r'arms\[0\] \(a\): config: '
                       'file not found'):
        studies.plan_runs(studies.load_spec(spec))
    spec = write_spec(tmp_path, dict(seeds=[0], arms=[
        dict(name='a', config=BASE_DEMO,
             cfg_options=['randomness.seed=3'])]))
    with pytest.raises(studies.SpecError, match='randomness.seed is set per'):
        studies.plan_runs(studies.load_spec(spec))


# ------------------------------------------------------------ statistics
BASELINE = {0: 0.70, 1: 0.72, 2: 0.74}


def test_mean_and_sample_std_by_hand():
    # mean (0.70 + 0.72 + 0.74) / 3 = 0.72; deviations -0.02, 0, 0.02;
    # sample variance (0.0004 + 0 + 0.0004) / (3 - 1) = 0.0004 -> std 0.02
    assert studies.mean(list(BASELINE.values())) == pytest.approx(0.72)
    assert studies.sample_std(list(BASELINE.values())) == pytest.approx(0.02)
    assert studies.sample_std([0.5]) is None  # undefined for one seed
    # mIoU: classes without an IoU (None / NaN) and excluded ones skipped
    iou = dict(a=0.5, b=None, c=float('nan'), d=0.7, e=0.1)
    assert studies.mean_iou(iou) == pytest.approx((0.5 + 0.7 + 0.1) / 3)
    assert studies.mean_iou(iou, ['e']) == pytest.approx(0.6)
    assert studies.mean_iou(dict(a=None)) is None


def test_paired_t_test_by_hand():
    arm = {0: 0.71, 1: 0.74, 2: 0.77}
    result = studies.compare(arm, BASELINE)
    assert result.test == 'paired'  # same seeds {0, 1, 2}
    # differences d = 0.01, 0.02, 0.03: mean 0.02 (= 0.74 - 0.72, the
    # difference of the arms' means); sd(d) = sqrt((1e-4 + 0 + 1e-4) / 2)
    # = 0.01; se = 0.01 / sqrt(3) = 0.0057735; t = 0.02 / se = 2 sqrt(3)
    # = 3.4641; df = 3 - 1 = 2
    assert result.diff == pytest.approx(0.02)
    assert result.t == pytest.approx(2 * math.sqrt(3))
    assert result.df == 2
    # t_{0.975, 2} = 4.303 (t table); exactly 2 / sqrt(2 * 0.05 * 0.95)...
    # not needed: 4.302653 * 0.0057735 = 0.024841
    # -> CI = 0.02 -+ 0.024841 = [-0.004841, 0.044841]
    assert result.ci_low == pytest.approx(-0.004841, abs=1e-6)
    assert result.ci_high == pytest.approx(0.044841, abs=1e-6)
    # two-sided p with 2 df: the t CDF is F(t) = 1/2 + t / (2 sqrt(t^2 + 2)),
    # so p = 2 (1 - F(t)) = 1 - t / sqrt(t^2 + 2) = 1 - sqrt(12 / 14)
    # = 1 - 0.925820 = 0.074180
    assert result.p == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-6)
    assert result.p == pytest.approx(0.074, abs=5e-4)
    assert result.test_label == 'paired t, df=2'


def test_welch_t_test_by_hand():
    arm = {3: 0.73, 4: 0.75, 5: 0.77}  # other seeds than the baseline's
    result = studies.compare(arm, BASELINE)
    assert result.test == 'welch'
    # means 0.75 and 0.72: diff 0.03; both sample variances 0.0004, so
    # s^2/n = 0.0004 / 3 = 1.3333e-4 each; se = sqrt(2.6667e-4) = 0.0163299;
    # t = 0.03 / 0.0163299 = 1.837117
    assert result.diff == pytest.approx(0.03)
    assert result.t == pytest.approx(1.837117, abs=1e-6)
    # Welch-Satterthwaite: (v + v)^2 / (v^2 / 2 + v^2 / 2) = 4 v^2 / v^2 = 4
    assert result.df == pytest.approx(4)
    # t_{0.975, 4} = 2.776 (table; 2.776445): half-width 2.776445 *
    # 0.0163299 = 0.045339 -> CI [-0.015339, 0.075339]
    assert result.ci_low == pytest.approx(-0.015339, abs=1e-6)
    assert result.ci_high == pytest.approx(0.075339, abs=1e-6)
    # two-sided p with 4 df: with a = t / sqrt(t^2 + 4), the t CDF is
    # F(t) = 1/2 + 3a/4 - a^3/4, so p = 2 (1 - F) = 1 - 3a/2 + a^3/2;
    # a = 1.837117 / sqrt(3.375 + 4) = 0.676481 -> p = 0.140
    a = result.t / math.sqrt(result.t**2 + 4)
    assert a == pytest.approx(0.676481, abs=1e-6)
    assert result.p == pytest.approx(1 - 1.5 * a + 0.5 * a**3, abs=1e-6)
    assert result.p == pytest.approx(0.140, abs=5e-4)
    assert result.test_label == 'Welch t, df=4.00'


def test_welch_df_with_unequal_seed_counts_by_hand():
    arm = {5: 0.73, 6: 0.77}  # n=2: mean 0.75, variance 0.0008
    result = studies.compare(arm, BASELINE)  # n=3: mean 0.72, var 0.0004
    # no seed in common -> Welch
    assert result.test == 'welch'
    # with u = 0.0004: s^2/n = u for the arm, u/3 for the baseline;
    # df = (u + u/3)^2 / (u^2 / 1 + (u/3)^2 / 2) = (16/9) / (19/18) = 32/19
    assert result.df == pytest.approx(32 / 19)
    # t = 0.03 / sqrt(4u/3) = 0.03 / 0.0230940 = 1.299038
    assert result.t == pytest.approx(1.299038, abs=1e-6)


def test_paired_on_the_common_seeds_by_hand():
    """An arm that ran seeds 0, 1 of the baseline's 0, 1, 2 is paired on
    seeds 0 and 1; seed 2 is named as left out."""
    arm = {0: 0.73, 1: 0.77}
    result = studies.compare(arm, BASELINE)
    assert result.test == 'paired'
    # d = 0.73 - 0.70, 0.77 - 0.72 = 0.03, 0.05: mean 0.04 (not the
    # difference of all means, 0.75 - 0.72), sd = sqrt(2e-4) = 0.0141421,
    # se = 0.01, t = 4, df = 1
    assert result.diff == pytest.approx(0.04)
    assert result.t == pytest.approx(4)
    assert result.df == 1
    # t_{0.975, 1} = 12.706205: CI 0.04 -+ 0.127062
    assert result.ci_low == pytest.approx(0.04 - 0.127062, abs=1e-6)
    assert result.ci_high == pytest.approx(0.04 + 0.127062, abs=1e-6)
    # p with 1 df (Cauchy): 1 - 2 atan(4) / pi = 0.156
    assert result.p == pytest.approx(1 - 2 * math.atan(4) / math.pi)
    assert result.test_label == 'paired t, df=1 (seeds 2 unpaired, left out)'


def test_no_test_below_two_seeds():
    result = studies.compare({0: 0.75}, {0: 0.72})
    assert result.test == 'none' and result.p is None
    assert result.diff == pytest.approx(0.03)
    assert result.test_label == 'none (needs >= 2 seeds in each arm)'
    # paired seeds with identical differences: no spread, so no t or p
    result = studies.compare({0: 0.5, 1: 0.75}, {0: 0.5, 1: 0.75})
    assert (result.test, result.diff, result.t, result.p) == ('paired', 0,
                                                              None, None)
    assert result.test_label == 'paired t, df=1 (differences all equal: ' \
        'no t-test)'


# --------------------------------------------------- resume and commands
def dry_run(capsys, spec, *args):
    """(train and test commands, stdout) of ``run_study.py --dry-run``."""
    assert tool.main([spec, *map(str, args), '--dry-run']) == 0
    out = capsys.readouterr().out
    cmds = []
    for line in out.splitlines():
        if line.startswith('$ '):
            cmd = shlex.split(line[2:].split('  > ')[0])
            if cmd[0].startswith('CUDA_VISIBLE_DEVICES='):
                cmd = cmd[1:]  # the job's GPUs, checked on the line itself
            cmds.append(cmd)
    return cmds, out


def option(cmd, key):
    """Value of ``key=`` among a command's --cfg-options (last wins)."""
    values = [a.split('=', 1)[1] for a in cmd if a.startswith(f'{key}=')]
    return values[-1] if values else None


def test_commands_seed_order_and_the_ct_draw_seed(capsys, tmp_path):
    cmds, out = dry_run(capsys, demo_spec(tmp_path))
    trains = [c for c in cmds if c[1].endswith('train.py')]
    tests = [c for c in cmds if c[1].endswith('test.py')]
    # seed-major: both arms' seed 0, then seed 1
    assert [(c[2], option(c, 'randomness.seed')) for c in trains] == [
        (BASE_DEMO, '0'), (CT_DEMO, '0'), (BASE_DEMO, '1'), (CT_DEMO, '1')]
    # CT's own draw seed follows the run's seed; the baseline has no CT
    assert [option(c, 'ct_head.seed') for c in trains] == [None, '0', None,
                                                           '1']
    for cmd, (arm, seed) in zip(trains, [('base', 0), ('ct', 0),
                                         ('base', 1), ('ct', 1)]):
        work = str(tmp_path / 'work' / arm / f'seed{seed}')
        assert cmd[cmd.index('--work-dir') + 1] == work
        assert '--resume' not in cmd and '--launcher' not in cmd
    for cmd, train in zip(tests, trains):
        work = train[train.index('--work-dir') + 1]
        # the run's test config (the dumped config + the per-class file)
        # and the final checkpoint
        assert cmd[2:4] == [osp.join(work, studies.TEST_CONFIG_NAME),
                            osp.join(work, f'iter_{DEMO_ITERS}.pth')]
    assert '[demo] run 4/4 | ct | seed 1 | training' in out
    # a dry run writes nothing
    assert not (tmp_path / 'work').exists()
    assert not (tmp_path / 'out').exists()


def test_cfg_options_order_spec_then_arm_then_command_line(capsys,
                                                           tmp_path):
    spec = write_spec(tmp_path, dict(
        seeds=[5], work_root=str(tmp_path / 'w'), output=str(tmp_path / 'o'),
        cfg_options=['train_cfg.max_iters=7', 'train_cfg.val_interval=7'],
        arms=[dict(name='ct', config=CT_DEMO, cfg_options={
            'train_cfg.max_iters': 9, 'ct_head.seed': 11})]))
    (train, test), _ = dry_run(capsys, spec)
    assert option(train, 'train_cfg.max_iters') == '9'  # the arm's wins
    assert option(train, 'train_cfg.val_interval') == '7'
    assert option(train, 'ct_head.seed') == '11'  # the user's CT seed
    assert len([a for a in train if a.startswith('ct_head.seed=')]) == 1
    assert test[3].endswith('iter_9.pth')
    (train, test), _ = dry_run(capsys, spec, '--cfg-options',
                               'train_cfg.max_iters=3')
    assert option(train, 'train_cfg.max_iters') == '3'  # command line wins
    assert test[3].endswith('iter_3.pth')


def test_resume_skip_and_retest(capsys, tmp_path):
    spec = demo_spec(tmp_path, seeds=[0],
                     arms=[dict(name='base', config=BASE_DEMO)])
    work = tmp_path / 'work' / 'base' / 'seed0'
    work.mkdir(parents=True)
    # killed before its first checkpoint: trained again from scratch
    (train, _), out = dry_run(capsys, spec)
    assert '--resume' not in train and '| training (' in out
    # killed after a checkpoint: resumed from it
    (work / 'last_checkpoint').write_text(str(work / 'iter_100.pth'))
    (train, _), out = dry_run(capsys, spec)
    assert '--resume' in train and '| resuming (' in out
    # trained, but not tested: only the test
    (work / f'iter_{DEMO_ITERS}.pth').write_bytes(b'')
    cmds, out = dry_run(capsys, spec)
    assert [c[1].endswith('test.py') for c in cmds] == [True]
    # finished (its result file exists): skipped, unless --retest
    result = tmp_path / 'out' / 'runs' / 'base' / 'seed0.json'
    result.parent.mkdir(parents=True)
    result.write_text('{}')
    cmds, out = dry_run(capsys, spec)
    assert cmds == [] and '| finished earlier (' in out
    cmds, _ = dry_run(capsys, spec, '--retest')
    assert len(cmds) == 1 and cmds[0][1].endswith('test.py')
    # a finished run whose checkpoint is gone is never trained again
    (work / f'iter_{DEMO_ITERS}.pth').unlink()
    assert tool.main([spec, '--retest', '--dry-run']) == 1
    assert 'cannot retest' in capsys.readouterr().err


def test_multi_gpu_and_parallel_jobs(capsys, tmp_path):
    jobs, gpus, port = 2, 2, 29500
    cmds, out = dry_run(capsys, demo_spec(tmp_path), '--gpus', gpus,
                        '--jobs', jobs, '--gpu-ids', *range(jobs * gpus))
    assert len(cmds) == 8  # (train + test) x 2 arms x 2 seeds
    for cmd in cmds:
        assert cmd[1:3] == ['-m', 'torch.distributed.run']
        assert f'--nproc_per_node={gpus}' in cmd
        assert cmd[cmd.index('--launcher') + 1] == 'pytorch'
    lines = [line for line in out.splitlines() if line.startswith('$ ')]
    for line in lines:
        # each job's GPUs and torchrun port; the output goes to log files
        devices = line.split()[1]
        job = int(line.split('--master_port=')[1].split()[0]) - port
        assert devices == 'CUDA_VISIBLE_DEVICES=' + ','.join(
            map(str, range(job * gpus, (job + 1) * gpus)))
        assert line.endswith(('study_train.log', 'study_test.log'))


def test_a_resumed_run_adds_its_parts(tmp_path):
    """Wall times and validation curves of a run trained in two parts."""
    work = str(tmp_path / 'run')
    studies.record_timing(work, 'train', 5.0, 1)  # failed from scratch
    studies.record_timing(work, 'train', 10.0, 1)  # killed: a new start
    studies.record_timing(work, 'train', 20.0, 0, resumed=True)
    studies.record_timing(work, 'test', 3.0, 0)
    timing = studies.read_timing(work)
    # the restart threw the first attempt's work away; the resume adds
    assert [t['seconds'] for t in timing['train']] == [10.0, 20.0]
    assert timing['test'] == [dict(seconds=3.0, exit_code=0)]
    # each part logs into its own <timestamp>/vis_data/scalars.json; the
    # later part's record wins for a step both logged
    for stamp, records in (
            ('20240101_000000', [dict(loss=1.0, step=1),
                                 dict(mIoU=10.0, aAcc=50.0, step=2,
                                      time=0.1, data_time=0.01)]),
            ('20240102_000000', [dict(mIoU=11.0, step=2),
                                 dict(mIoU=12.0, step=4)])):
        folder = osp.join(work, stamp, 'vis_data')
        os.makedirs(folder)
        with open(osp.join(folder, 'scalars.json'), 'w') as f:
            f.write('\n'.join(json.dumps(r) for r in records) + '\n')
    assert studies.val_metrics(work) == [dict(mIoU=11.0, step=2),
                                         dict(mIoU=12.0, step=4)]


# --------------------------------------------------------------- table
def write_result_file(output, arm, seed, iou, labels=None, machine='m1'):
    """A result file as write_result makes it (the fields the table
    reads)."""
    path = osp.join(output, 'runs', arm, f'seed{seed}.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(dict(format=studies.RESULT_FORMAT, arm=arm, seed=seed,
                       classes=list(iou), iou=iou,
                       labels=labels or dict(model='UPer', backbone='Swin',
                                             ct_loss='-'),
                       machine=dict(id=machine)), f)


def test_pairs_only_runs_of_one_machine(tmp_path):
    """Seed 2's CT run was made on another machine than its baseline: it is
    left out of the paired test, which then pairs seeds 0 and 1 only."""
    out = tmp_path / 'out'
    study = studies.parse_spec(dict(
        name='m', seeds=[0, 1, 2], output=str(out),
        work_root=str(tmp_path / 'work'),
        arms=[dict(name='base', config='b.py'),
              dict(name='ct', config='c.py', baseline='base')]))
    for seed, m in BASELINE.items():
        write_result_file(str(out), 'base', seed, dict(a=m))
    for seed, m in {0: 0.73, 1: 0.77, 2: 0.99}.items():
        write_result_file(str(out), 'ct', seed, dict(a=m),
                          machine='m2' if seed == 2 else 'm1')
    rows = studies.summarize_study(study, studies.read_results(study))
    comparison = rows[1].comparison
    # = test_paired_on_the_common_seeds_by_hand: d = 0.03, 0.05
    assert comparison.test == 'paired' and comparison.df == 1
    assert comparison.diff == pytest.approx(0.04)
    assert 'seeds 2 ran on another machine' in comparison.test_label


def test_stopping_rule(tmp_path):
    """The rule holds once the arm has min_pairs pairs and a CI half-width
    at most half_width; the runner then starts no new run."""
    out = tmp_path / 'out'
    data = dict(name='s', seeds=[0, 1, 2, 3], output=str(out),
                work_root=str(tmp_path / 'work'),
                arms=[dict(name='base', config='b.py'),
                      dict(name='ct', config='c.py', baseline='base')],
                stop=dict(arm='ct', half_width=0.01, min_pairs=3))
    study = studies.parse_spec(data)
    assert study.stop == studies.StopRule('ct', 0.01, 3)
    # two pairs with equal differences: half-width 0, but too few pairs
    for seed in (0, 1):
        write_result_file(str(out), 'base', seed, dict(a=0.5 + seed / 10))
        write_result_file(str(out), 'ct', seed, dict(a=0.52 + seed / 10))
    assert studies.stop_rule_reached(study) is None
    # a third pair, differences 0.02, 0.02, 0.026: sd 0.003464, se 0.002,
    # t_{0.975, 2} = 4.302653 -> half-width 0.008605 <= 0.01
    write_result_file(str(out), 'base', 2, dict(a=0.7))
    write_result_file(str(out), 'ct', 2, dict(a=0.726))
    reached = studies.stop_rule_reached(study)
    assert reached == ('stopping rule met: ct vs base, 3 pairs, 95 % CI '
                       'half-width 0.0086 <= 0.01')
    # a wider rule is not met by the same pairs
    study = studies.parse_spec(dict(data, stop=dict(
        arm='ct', half_width=0.005, min_pairs=3)))
    assert studies.stop_rule_reached(study) is None


def three_classes(m, c):
    """IoUs whose mean over ``a`` and ``b`` is exactly m; ``c`` apart."""
    return dict(a=m + 0.1, b=m - 0.1, c=c)


def test_table_markdown_and_csv(tmp_path, capsys):
    out = tmp_path / 'out'
    spec = write_spec(tmp_path, dict(
        name='t', seeds=[0, 1, 2], exclude_classes=['c'], output=str(out),
        work_root=str(tmp_path / 'work'),
        arms=[dict(name='base', config='base.py'),
              dict(name='ct', config='ct.py', baseline='base'),
              dict(name='ct_more', config='ct.py', baseline='base',
                   seeds=[3, 4, 5]),
              dict(name='never_ran', config='x.py')]))
    ct = dict(model='UPer', backbone='Swin', ct_loss='CL')
    for seed, m in BASELINE.items():
        write_result_file(str(out), 'base', seed, three_classes(m, 0.3))
    for seed, m in {0: 0.71, 1: 0.74, 2: 0.77}.items():
        write_result_file(str(out), 'ct', seed, three_classes(m, 0.4), ct)
    for seed, m in {3: 0.73, 4: 0.75, 5: 0.77}.items():
        write_result_file(str(out), 'ct_more', seed, three_classes(m, 0.5),
                          ct)
    assert tool.main([spec, '--table-only']) == 0
    captured = capsys.readouterr()
    text = (out / 'table.md').read_text()
    assert text == captured.out
    assert 'never_ran seed 0: no result' in captured.err
    assert 'over the 2 classes a, b (c excluded)' in text
    assert 'sample std (ddof=1)' in text and 'ttest_rel' in text
    lines = [line for line in text.splitlines() if line.startswith('| ')]
    assert lines[0] == (
        '| Arm | Model | Backbone | CT loss | n (seeds) | mIoU (mean ± std) '
        '| a | b | c | mIoU (all) | Baseline | Δ mIoU [95% CI] | p | Test '
        '| Source |')
    # base: mIoU 0.72 ± 0.02; a = 0.72 + 0.1, b = 0.72 - 0.1, c 0.3;
    # all 3 classes per seed: (2 m + 0.3) / 3 -> mean 0.58, std 0.02 * 2/3
    assert lines[1] == ('| base | UPer | Swin | - | 3 (0,1,2) | 0.7200 ± '
                        '0.0200 | 0.8200 | 0.6200 | 0.3000 | 0.5800 ± 0.0133 '
                        '|  |  |  |  | ours |')
    # ct: the paired example of test_paired_t_test_by_hand
    assert lines[2].endswith(
        '| base | +0.0200 [-0.0048, +0.0448] | 0.074 | paired t, df=2 | '
        'ours |')
    # ct_more: the Welch example of test_welch_t_test_by_hand
    assert lines[3].endswith(
        '| base | +0.0300 [-0.0153, +0.0753] | 0.140 | Welch t, df=4.00 | '
        'ours |')
    assert len(lines) == 4  # never_ran has no row
    with open(out / 'table.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['arm'] for r in rows] == ['base', 'ct', 'ct_more']
    base, ct_row, more = rows
    assert float(base['miou_mean']) == pytest.approx(0.72)
    assert float(base['miou_std']) == pytest.approx(0.02)
    assert float(base['iou_c']) == pytest.approx(0.3)
    assert base['excluded_classes'] == 'c' and base['seeds'] == '0 1 2'
    assert base['test'] == base['p_value'] == ''
    assert ct_row['test'] == 'paired' and ct_row['df'] == '2.0'
    assert float(ct_row['p_value']) == pytest.approx(1 - math.sqrt(12 / 14))
    assert more['test'] == 'welch' and float(more['df']) == pytest.approx(4)
    assert float(more['ci_low']) == pytest.approx(-0.015339, abs=1e-6)
    # the mean over every class instead: --exclude-classes with none
    assert tool.main([spec, '--table-only', '--exclude-classes']) == 0
    text = capsys.readouterr().out
    assert 'over all classes' in text and 'mIoU (all)' not in text
    assert '| base | UPer | Swin | - | 3 (0,1,2) | 0.5800 ± 0.0133 |' in text
    # an excluded class the results do not have is an error
    assert tool.main([spec, '--table-only', '--exclude-classes', 'd']) == 1
    assert "['d'] are not classes" in capsys.readouterr().err


# ------------------------------------------------------------ end to end
E2E_ITERS = 2
E2E_OPTIONS = [f'train_cfg.max_iters={E2E_ITERS}',
               f'train_cfg.val_interval={E2E_ITERS}',
               f'default_hooks.checkpoint.interval={E2E_ITERS}']


def logs_of(work_root) -> str:
    """The tails of the runs' tool logs, to show why a run failed."""
    tails = []
    for path in sorted(glob.glob(osp.join(str(work_root), '*', '*',
                                          'study_*.log'))):
        with open(path) as f:
            tails.append(f'== {path}\n' + f.read()[-3000:])
    return '\n'.join(tails)


def test_two_tiny_runs_through_mmseg_tools(demo_data, tmp_path, capsys,
                                           monkeypatch):
    """A baseline and a CT arm, one seed each, two iterations: trained by
    tools/train.py, tested by tools/test.py, result files, table; run
    again, nothing is redone.

    The study tool runs in this process (its runs are subprocesses), which
    saves two interpreter starts; one OpenMP thread per run, as in
    e2e_utils.run."""
    monkeypatch.setenv('OMP_NUM_THREADS', os.environ.get('OMP_NUM_THREADS',
                                                         '1'))
    spec = write_spec(tmp_path, dict(
        name='tiny', seeds=[0], work_root=str(tmp_path / 'work'),
        output=str(tmp_path / 'out'), exclude_classes=['clutter'],
        arms=[dict(name='base', config=tiny_config(tmp_path, demo_data,
                                                   ct=False)),
              dict(name='ct', config=tiny_config(tmp_path, demo_data),
                   baseline='base')]))
    monkeypatch.chdir(tmp_path)
    # the two runs at once, each a train.py then a test.py process, their
    # output in <work_dir>/study_{train,test}.log
    code = tool.main([spec, '--jobs', '2', '--cfg-options', *E2E_OPTIONS])
    log = capsys.readouterr().out
    assert code == 0, logs_of(tmp_path / 'work')
    out = tmp_path / 'out'
    for arm in ('base', 'ct'):
        with open(out / 'runs' / arm / 'seed0.json') as f:
            result = json.load(f)
        assert (result['arm'], result['seed'], result['split']) == (arm, 0,
                                                                    'test')
        assert result['classes'] == list(POTSDAM_CLASSES)
        assert result['iterations'] == E2E_ITERS
        assert result['train_wall_s'] > 0 and result['test_wall_s'] > 0
        assert result['train_attempts'] == 1
        assert 'randomness.seed=0' in result['cfg_options']
        assert ('ct_head.seed=0' in result['cfg_options']) == (arm == 'ct')
        assert result['labels']['ct_loss'] == ('CL' if arm == 'ct' else '-')
        ious = [v for v in result['iou'].values() if v is not None]
        assert result['mIoU'] == pytest.approx(sum(ious) / len(ious))
        # the IoUs recomputed from the pixel counts, and where it ran
        pixels = result['pixels']
        for name, iou in result['iou'].items():
            union = pixels['union'][name]
            assert iou == (pixels['intersection'][name] / union
                           if union else None)
        assert result['machine']['id'].endswith(' | no GPU')
        assert result['machine']['omp_num_threads'] == '1'
        assert re.fullmatch(r'[0-9a-f]{40}(\+dirty)?', result['commit'])
        # the validation during training, for the curves
        assert [v['step'] for v in result['val']] == [E2E_ITERS]
        assert 'mIoU' in result['val'][0]
        # the work_dir keeps the logs (and the checkpoint)
        work = result['work_dir']
        assert glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
        assert osp.isfile(osp.join(work, f'iter_{E2E_ITERS}.pth'))
    # nothing but small JSON / tables in the output folder
    assert sorted(osp.relpath(p, out) for p in glob.glob(
        str(out / '**' / '*'), recursive=True) if osp.isfile(p)) == [
        'pairs.md', 'runs/base/seed0.json', 'runs/ct/seed0.json',
        'table.csv', 'table.md']
    # the labels come from the config
    assert '| ct | UPer | Swin | CL | 1 (0) |' in log
    assert 'none (needs >= 2 seeds in each arm)' in log
    assert '[tiny] run 2/2 |' in log
    # a finished study: nothing runs again, the table is printed again
    assert tool.main([spec, '--cfg-options', *E2E_OPTIONS]) == 0
    again = capsys.readouterr().out
    assert 'train.py' not in again and 'test.py' not in again
    assert again.count('| finished earlier (') == 2
    assert '| ct | UPer | Swin | CL | 1 (0) |' in again
    # the mechanism report and the curves of the same two runs
    # (tools/study_report.py as a command)
    run([sys.executable, osp.join(REPO, 'tools', 'study_report.py'), spec,
         '--num-images', '1'], cwd=tmp_path)
    with open(out / 'mechanism.csv') as f:
        rows = {r['arm']: r for r in csv.DictReader(f)}
    assert set(rows) == {'base', 'ct'}
    assert rows['base']['ct/over_clip'] == ''  # no CT, nothing logged
    assert 0.0 <= float(rows['ct']['ct/over_clip']) <= 1.0
    assert -1 <= float(rows['ct']['s0_intra']) <= 1
    assert (out / 'val_curves.png').stat().st_size > 0
    assert '| ct | 1 |' in (out / 'mechanism.md').read_text()

