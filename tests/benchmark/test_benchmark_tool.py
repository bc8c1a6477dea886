"""ct_mmseg.benchmark: its statistics by hand, and both modes of
tools/benchmark_ct.py end to end on tiny inputs (the real figures are in
docs/cost.md; no timing is asserted here)."""
import json
import os.path as osp
import sys

import pytest

from ct_mmseg.benchmark import paired_ratio_interval, realistic_gt
from e2e_utils import REPO, run

TOOL = osp.join(REPO, 'tools', 'benchmark_ct.py')


def test_paired_ratio_interval_by_hand():
    """Ratios 1.1, 1.2, 1.3: mean 1.2, sample sd 0.1, t(0.975, 2) =
    4.302653, half width 4.302653 * 0.1 / sqrt(3) = 0.248414."""
    assert paired_ratio_interval([2, 1, 10], [2.2, 1.2, 13]) == (
        1.2, 0.9516, 1.4484)
    assert paired_ratio_interval([1.0], [1.1]) is None


def test_realistic_gt_holds_a_handful_of_classes_per_image():
    import torch
    gen = torch.Generator().manual_seed(0)
    gt = realistic_gt(3, 64, 150, classes_per_image=5, generator=gen)
    assert gt.shape == (3, 64, 64)
    for image in gt:
        assert 1 <= image.unique().numel() <= 5
    gt = realistic_gt(4, 32, 19, classes_per_image=3, batch_classes=6,
                      generator=gen)
    assert gt.unique().numel() == 6  # every class of the batch pool used


def test_full_step_mode_end_to_end(tmp_path):
    """Baseline and CT built from one stock-style config, interleaved steps,
    memory, inference identity, the JSON with the ratios and their CI."""
    out = tmp_path / 'bench.json'
    log = run([sys.executable, TOOL,
               osp.join(REPO, 'configs', 'ct',
                        'segformer_mit-b0_potsdam-demo.py'),
               '--ct-mode', 'infonce', '--img-size', 64, '--batch-size', 2,
               '--steps', 3, '--warmup', 1, '--threads', 1, '--device', 'cpu',
               '--out', out], cwd=REPO)
    assert 'mean over the pairs' in log
    result = json.loads(out.read_text())
    assert result['ct_mode'] == 'infonce'
    assert result['inference_logits_identical'] is True
    ratios = result['ratios']
    assert ratios['inference_flops'] == 1.0
    assert ratios['inference_params'] == 1.0
    mean, low, high = ratios['step_time_paired_ci95']
    assert low <= mean <= high
    assert len(result['ct']['step_cpu_ms_all']) == 3
    assert result['ct']['params_total'] > result['baseline']['params_total']
    assert result['ct']['total_bytes'] > 0


def test_sweep_mode_end_to_end(tmp_path):
    run([sys.executable, TOOL, '--sweep', '--sizes', 64, '--classes', 2,
         '--dataset-classes', 6, 19, '--losses', 'cl', 'infonce',
         '--batch-size', 1, '--repeats', 1, '--threads', 1, '--device', 'cpu',
         '--work-dir', tmp_path], cwd=REPO)
    rows = json.loads((tmp_path / 'sweep.json').read_text())
    rows = rows['rows'] if isinstance(rows, dict) else rows
    assert {(r['dataset_classes'], r['loss']) for r in rows} == {
        (6, 'cl'), (6, 'infonce'), (19, 'cl'), (19, 'infonce')}
    ratios = (tmp_path / 'sweep_ratios.md').read_text()
    assert 'K=19 / K=6' in ratios and 'infonce / cl' in ratios
    for name in ('sweep.md', 'sweep.csv', 'sweep.png'):
        assert (tmp_path / name).is_file(), name


def test_options_against_ct(tmp_path):
    """--against ct: the reference is CT itself, the other model CT with
    the options; a memory adds exactly S*K*L*D*4 bytes of buffers (plus its
    counters) and nothing at inference; the sweep measures the options
    beside CT and gives their ratio."""
    out = tmp_path / 'bench.json'
    run([sys.executable, TOOL,
         osp.join(REPO, 'configs', 'ct', 'segformer_mit-b0_potsdam-demo.py'),
         '--img-size', 64, '--batch-size', 2, '--steps', 1, '--warmup', 0,
         '--threads', 1, '--device', 'cpu', '--against', 'ct',
         '--ct-options', 'memory_size=8', '--out', out], cwd=REPO)
    result = json.loads(out.read_text())
    assert result['reference'] == 'ct'
    assert result['ct_options'] == {'memory_size': 8}
    assert result['inference_logits_identical'] is True
    # the two models have the same parameters; the memory is buffers:
    # 4 stages x 6 classes x 8 entries x 128 channels x 4 B, and per stage
    # and class two int64 counters
    assert result['ct']['params_total'] == result['baseline']['params_total']
    added = result['ct']['resident_bytes'] - \
        result['baseline']['resident_bytes']
    assert added == 4 * 6 * 8 * 128 * 4 + 4 * 6 * 2 * 8
    run([sys.executable, TOOL, '--sweep', '--sizes', 64, '--classes', 2,
         '--dataset-classes', 6, '--losses', 'cl', '--batch-size', 1,
         '--repeats', 1, '--threads', 1, '--device', 'cpu',
         '--ct-options', 'positive_purity=0.75', '--work-dir', tmp_path],
        cwd=REPO)
    rows = json.loads((tmp_path / 'sweep.json').read_text())
    rows = rows['rows'] if isinstance(rows, dict) else rows
    assert sorted(r['variant'] for r in rows) == ['bounded', 'options']
    assert 'options / ct' in (tmp_path / 'sweep_ratios.md').read_text()


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '-q']))
