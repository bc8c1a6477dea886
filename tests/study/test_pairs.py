"""ct_mmseg.study.pairs against values computed by hand."""
import math

import pytest

from ct_mmseg.study.pairs import (correlation, matched_seeds,
                                  never_predicted, pair_lines,
                                  pairs_markdown)
from ct_mmseg.study.spec import Arm, Study

CLASSES = ['a', 'b']


def run(miou, iou_a, iou_b, machine='m1', pred_b=5):
    assert abs(miou - (iou_a + iou_b) / 2) < 1e-12  # as the table counts
    return {'mIoU': miou, 'iou': {'a': iou_a, 'b': iou_b},
            'classes': CLASSES, 'machine': {'id': machine},
            'pixels': {'prediction': {'a': 10, 'b': pred_b}}}


def test_correlation_by_hand():
    # a = 1,2,3; b = 2,4,7: ma=2, mb=13/3; sab = (-1)(-7/3)+0+(1)(8/3)=5,
    # saa = 2, sbb = 49/9+1/9+64/9 = 114/9
    assert correlation([1, 2, 3], [2, 4, 7]) == pytest.approx(
        5 / math.sqrt(2 * 114 / 9))
    assert correlation([1, 2], [3, 4]) is None  # too few
    assert correlation([1, 1, 1], [3, 4, 5]) is None  # constant


def test_seeds_from_other_machines_do_not_pair():
    arm = {0: run(.15, .1, .2), 1: run(.15, .1, .2, 'm2'),
           2: run(.15, .1, .2)}
    base = {0: run(.15, .1, .2), 1: run(.15, .1, .2), 3: run(.15, .1, .2)}
    assert matched_seeds(arm, base) == [0]


def test_never_predicted_counts_zero_predictions():
    runs = [run(.05, .1, 0., pred_b=0), run(.15, .1, .2),
            run(.05, .1, 0., pred_b=0)]
    assert never_predicted(runs, 'b') == 2
    assert never_predicted(runs, 'a') == 0
    assert never_predicted([{'iou': {}}], 'a') is None  # no pixel counts


def test_pair_lines_by_hand():
    # differences of mIoU: +0.02, -0.01, +0.05 -> mean +0.02 (2.00 points),
    # sd = sqrt(((0)^2 + 0.03^2 + 0.03^2) / 2) = 0.03 (3.00 points)
    base = {0: run(.30, .2, .4), 1: run(.40, .3, .5), 2: run(.20, .1, .3)}
    arm = {0: run(.32, .34, .30), 1: run(.39, .3, .48),
           2: run(.25, .1, .4)}
    text = '\n'.join(pair_lines('ct', 'base', arm, base, CLASSES))
    assert '3 matched pairs (seeds 0,1,2)' in text
    assert 'Δ mIoU +2.00 [' in text
    assert 'sd of the differences 3.00' in text
    assert '| 1 | 40.00 | 39.00 | -1.00 | +0.00 | -2.00 |' in text
    # class a: differences +0.14, 0, 0 -> +4.67 points
    assert '| a | +4.67 [' in text
    assert '0 / 0 of 3' in text


def test_excluded_classes_leave_the_miou():
    base = {0: run(.30, .2, .4), 1: run(.40, .3, .5)}
    arm = {0: run(.35, .3, .4), 1: run(.40, .3, .5)}
    text = '\n'.join(pair_lines('ct', 'base', arm, base, CLASSES, ['b']))
    # mIoU over class a only: 20 -> 30 and 30 -> 30
    assert '| 0 | 20.00 | 30.00 | +10.00 |' in text
    assert '| 1 | 30.00 | 30.00 | +0.00 |' in text


def test_pairs_markdown_only_arms_with_a_baseline():
    study = Study(name='s', work_root='w', output='o', arms=[
        Arm('base', 'b.py', [], [0, 1]),
        Arm('ct', 'c.py', [], [0, 1], baseline='base')])
    results = {'base': {0: run(.15, .1, .2), 1: run(.25, .2, .3)},
               'ct': {}}
    text = pairs_markdown(study, results)
    assert '## ct − base' in text
    assert 'No matched pair' in text
    assert '## base' not in text
