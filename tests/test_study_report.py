"""ct_mmseg.study_report: training means, summaries and curves by hand."""
import json
import math
import os

import pytest

from ct_mmseg import study_report as report


def write_scalars(work_dir, records, stamp='20261201_000000'):
    path = os.path.join(work_dir, stamp, 'vis_data')
    os.makedirs(path)
    with open(os.path.join(path, 'scalars.json'), 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def test_training_means_average_the_logged_intervals(tmp_path):
    write_scalars(str(tmp_path), [
        {'step': 10, 'loss': 2.0, 'ct/over_clip': 1.0, 'ct/grad_share': 0.5},
        {'step': 20, 'loss': 1.5, 'ct/over_clip': 0.5, 'ct/grad_share': 0.3},
        {'step': 20, 'mIoU': 40.0},  # a validation record: not training
        {'step': 30, 'loss': 1.0, 'ct/over_clip': 0.0},
    ])
    means = report.training_means(str(tmp_path))
    assert means['ct/over_clip'] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert means['ct/grad_share'] == pytest.approx((0.5 + 0.3) / 2)
    assert means['ct/grad_norm_ct'] is None  # never logged


def test_summary_is_mean_and_sample_std_over_seeds():
    records = [dict(arm='a', seed=s, mIoU=v) for s, v in
               enumerate([40.0, 42.0, 47.0])]
    records.append(dict(arm='b', seed=0, mIoU=None))
    rows = report.summarize(records)
    mean, std, n = rows[0]['mIoU']
    # mean 43; deviations -3, -1, 4; sum of squares 26; / (3 - 1) = 13
    assert (mean, n) == (43.0, 3) and std == pytest.approx(math.sqrt(13))
    assert rows[1]['mIoU'] == (None, None, 0)
    table = report.mechanism_markdown(rows, ['mIoU'], ['test mIoU'])
    assert '| a | 3 | 43.000 ± 3.606 |' in table
    assert '| b | 1 | — |' in table


def test_val_curves_mean_min_max_per_step(tmp_path):
    results = {'a': {0: {'val': [{'step': 50, 'mIoU': 10.0},
                                 {'step': 100, 'mIoU': 20.0}]},
                     1: {'val': [{'step': 50, 'mIoU': 14.0}]}}}
    curves = report.val_curves(results)
    assert curves['a'] == [(50, 12.0, 10.0, 14.0, 2), (100, 20.0, 20.0, 20.0,
                                                       1)]
    out = tmp_path / 'curves.png'
    report.plot_val_curves(curves, str(out))
    assert out.stat().st_size > 0
