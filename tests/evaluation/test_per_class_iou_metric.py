"""PerClassIoUMetric: MMSeg's IoUMetric + per-class IoU in the results."""
import json

import numpy as np
import pytest
import torch

from ct_mmseg.evaluation import RESULTS_FORMAT, PerClassIoUMetric

CLASSES = ('impervious_surface', 'building', 'low_vegetation', 'tree', 'car',
           'clutter')
# Per class, summed over the two "images" below. low_vegetation has an
# empty union (NaN, skipped by the means, as in MMSeg).
INTERSECT = [1, 2, 0, 3, 4, 0]
UNION = [2, 4, 0, 6, 5, 10]
LABEL = [2, 3, 0, 4, 5, 6]
PRED = [1, 3, 0, 5, 4, 4]


def iou_by_hand():
    return [i / u if u else None for i, u in zip(INTERSECT, UNION)]


def results_of_two_images():
    """IoUMetric.process's per-image tuples; they add up to the lists."""
    def split(values, first):
        a = torch.tensor(first, dtype=torch.float64)
        return a, torch.tensor(values, dtype=torch.float64) - a

    parts = [split(v, [min(x, 1) for x in v])
             for v in (INTERSECT, UNION, PRED, LABEL)]
    return [tuple(p[0] for p in parts), tuple(p[1] for p in parts)]


def make_metric(**kwargs):
    metric = PerClassIoUMetric(mean_exclude=['clutter'], **kwargs)
    metric.dataset_meta = dict(classes=CLASSES)
    return metric


def test_per_class_iou_and_means(tmp_path):
    out = tmp_path / 'sub' / 'per_class_iou.json'
    metric = make_metric(results_file=str(out))
    metrics = metric.compute_metrics(results_of_two_images())

    iou = iou_by_hand()
    known = [v for v in iou if v is not None]
    five = [v for c, v in zip(CLASSES, iou) if v is not None and
            c != 'clutter']
    # MMSeg's own summary (nan-mean over all classes, rounded, percent)
    assert metrics['mIoU'] == pytest.approx(
        round(100 * sum(known) / len(known), 2))
    for name, value in zip(CLASSES, iou):
        if value is None:
            assert np.isnan(metrics[f'IoU.{name}'])
        else:
            assert metrics[f'IoU.{name}'] == pytest.approx(100 * value)
    assert metrics['mIoU_excl_clutter'] == pytest.approx(
        100 * sum(five) / len(five))

    saved = json.loads(out.read_text())
    assert saved['format'] == RESULTS_FORMAT
    assert saved['classes'] == list(CLASSES)
    assert [saved['iou'][c] for c in CLASSES] == pytest.approx(iou)
    assert saved['mIoU'] == pytest.approx(sum(known) / len(known))
    assert saved['mIoU_excl'] == pytest.approx(sum(five) / len(five))
    assert saved['aAcc'] == pytest.approx(sum(INTERSECT) / sum(LABEL))
    assert saved['num_images'] == 2
    # the counts each IoU comes from, as integers, summed over the images
    for name, counts in (('intersection', INTERSECT), ('union', UNION),
                         ('prediction', PRED), ('label', LABEL)):
        assert saved['pixels'][name] == dict(zip(CLASSES, counts))
        assert all(type(v) is int for v in saved['pixels'][name].values())


def test_without_results_file_or_exclusion():
    metric = PerClassIoUMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    metrics = metric.compute_metrics(results_of_two_images())
    assert 'IoU.car' in metrics
    assert not any(k.startswith('mIoU_excl') for k in metrics)


def test_unknown_excluded_class_is_an_error():
    metric = PerClassIoUMetric(mean_exclude=['background'])
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(KeyError, match='background'):
        metric.compute_metrics(results_of_two_images())


def test_process_then_evaluate_like_the_test_loop():
    """Through IoUMetric.process (a 2x2 prediction vs label)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    label = torch.tensor([[0, 0], [1, 255]])
    pred = torch.tensor([[0, 1], [1, 1]])
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=label[None])
    sample.pred_sem_seg = PixelData(data=pred[None])
    metric = make_metric()
    metric.process([], [sample.to_dict()])
    metrics = metric.evaluate(1)
    # class 0: inter 1, union 2; class 1: inter 1, union 2 (the ignored
    # pixel does not count); the rest absent -> NaN
    assert metrics['IoU.impervious_surface'] == pytest.approx(50.0)
    assert metrics['IoU.building'] == pytest.approx(50.0)
    assert np.isnan(metrics['IoU.car'])
    assert metrics['mIoU_excl_clutter'] == pytest.approx(50.0)
