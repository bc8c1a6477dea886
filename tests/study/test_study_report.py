"""ct_mmseg.study.report: training means, summaries and curves by hand."""
import json
import math
import os

import pytest

from ct_mmseg.study import report


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


def test_val_comparison_pairs_common_seeds_by_hand():
    def run(*vals):
        return {'val': [{'step': 10 * (i + 1), 'mIoU': v}
                        for i, v in enumerate(vals)]}
    results = {
        'base': {0: run(1.0, 30.0), 1: run(2.0, 32.0), 2: run(3.0, 31.0),
                 3: run(0.0, 29.0)},
        'opt': {0: run(9.0, 31.0), 1: run(9.0, 34.0), 2: run(9.0, 34.0)},
    }
    rows = {r['arm']: r for r in report.val_comparisons(results, 'base')}
    opt = rows['opt']
    # final values: opt 31, 34, 34 vs base 30, 32, 31 on seeds 0-2 (seed 3 of
    # base has no partner): d = 1, 2, 3; mean 2, sd 1, se 1/sqrt(3);
    # t = 2 * sqrt(3) = 3.464, df 2; t_.975,2 = 4.303 -> CI 2 -+ 2.484
    assert opt['seeds'] == [0, 1, 2] and opt['test'] == 'paired'
    assert opt['diff'] == pytest.approx(2.0)
    assert opt['low'] == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-4)
    # two-sided p of t = 2 sqrt(3) with 2 df: 1 - t / sqrt(t^2 + 2) = 1 -
    # sqrt(12 / 14) (closed form of the t CDF for 2 df)
    assert opt['p'] == pytest.approx(1 - math.sqrt(12 / 14), abs=1e-6)
    assert 'diff' not in rows['base']
    text = report.val_markdown(list(rows.values()), 'base')
    assert '| opt | 3 | 33.00 ± 1.73 | 0,1,2 | +2.00 |' in text
