"""PerClassIoUMetric: MMSeg's IoUMetric with per-class IoU as results.

MMSeg's ``IoUMetric`` prints a per-class table to the log but returns only
the summary (aAcc, mIoU, mAcc), so the per-class IoU never reaches a file a
program can read. This subclass

* returns ``IoU.<class>`` for every class (percent, like MMSeg's numbers),
  so the values land in MMEngine's own logs: ``vis_data/scalars.json`` for
  validation during training and ``<timestamp>/<timestamp>.json`` of
  ``tools/test.py``;
* returns ``mIoU_excl_<names>``: the mean IoU without ``mean_exclude``
  classes (the paper's Potsdam mIoU: Clutter excluded, GeoSeg's convention);
* optionally writes everything, unrounded and as fractions, to
  ``results_file`` (a JSON file; ``tools/run_study.py`` reads it).

Everything else (the printed table, the summary keys and their rounding) is
exactly MMSeg's.
"""
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

# Written into every results file; bump it if the schema changes.
RESULTS_FORMAT = 'ct_mmseg.per_class_iou.v2'


def per_class_iou(results: List[tuple]) -> np.ndarray:
    """IoU of every class from IoUMetric's per-batch results.

    Args:
        results (list[tuple]): what ``IoUMetric.process`` collects: one
            ``(area_intersect, area_union, area_pred, area_label)`` tuple of
            (K,) tensors per image.

    Returns:
        np.ndarray: (K,) float64 IoU in [0, 1]; NaN for a class with an
        empty union (absent from both prediction and label), which MMSeg's
        ``nanmean`` also skips.
    """
    intersect = sum(r[0] for r in results).double().cpu().numpy()
    union = sum(r[1] for r in results).double().cpu().numpy()
    with np.errstate(divide='ignore', invalid='ignore'):
        return intersect / union


def pixel_counts(results: List[tuple]) -> Dict[str, np.ndarray]:
    """The pixel counts every IoU comes from, summed over the images.

    Args:
        results (list[tuple]): as for :func:`per_class_iou`.

    Returns:
        dict[str, np.ndarray]: (K,) int64 ``intersection``, ``union``,
        ``prediction`` (pixels predicted as the class, on labelled pixels)
        and ``label`` (pixels labelled as the class). IoU = intersection /
        union; a class with ``prediction`` 0 was never predicted.
    """
    names = ('intersection', 'union', 'prediction', 'label')
    return {name: sum(r[i] for r in results).double().cpu().numpy()
            .round().astype(np.int64) for i, name in enumerate(names)}


def _finite_or_none(value: float) -> Optional[float]:
    """JSON has no NaN: store a missing IoU as null."""
    return None if value is None or not np.isfinite(value) else float(value)


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """:class:`mmseg.evaluation.IoUMetric` + per-class IoU in the results.

    Args:
        mean_exclude (Sequence[str]): class names left out of the extra mean
            ``mIoU_excl_<names>`` (e.g. ``['clutter']`` gives
            ``mIoU_excl_clutter``, the paper's 5-class Potsdam mIoU).
            Default (): no extra mean.
        results_file (str, optional): if set, the main process writes the
            results there as JSON (see :meth:`results_dict`). Default None.
        **kwargs: :class:`IoUMetric` arguments (``iou_metrics``,
            ``ignore_index``, ...).

    The returned metrics are MMSeg's (``aAcc``, ``mIoU``, ...) plus
    ``IoU.<class>`` and, with ``mean_exclude``, ``mIoU_excl_<names>``, all in
    percent; the file holds the same numbers as fractions in [0, 1].
    """

    def __init__(self,
                 mean_exclude: Sequence[str] = (),
                 results_file: Optional[str] = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.mean_exclude = list(mean_exclude)
        self.results_file = results_file

    @property
    def excl_key(self) -> str:
        """Name of the extra mean, e.g. ``mIoU_excl_clutter``."""
        return 'mIoU_excl_' + '_'.join(self.mean_exclude)

    def results_dict(self, results: List[tuple]) -> Dict:
        """Per-class results as a JSON-ready dict (fractions in [0, 1]).

        Keys: ``format``, ``classes``, ``iou`` ({class: IoU or None}),
        ``mIoU`` (nan-mean over all classes, MMSeg's mIoU), ``mean_exclude``,
        ``mIoU_excl`` (nan-mean without ``mean_exclude``; None if no class
        is left), ``aAcc``, ``num_images``, ``pixels`` ({count name:
        {class: pixels}}, see :func:`pixel_counts`).
        """
        classes = list(self.dataset_meta['classes'])
        unknown = sorted(set(self.mean_exclude) - set(classes))
        if unknown:
            raise KeyError(f'PerClassIoUMetric: mean_exclude {unknown} are '
                           f'not dataset classes {classes}')
        iou = per_class_iou(results)  # (K,)
        kept = np.array([c not in self.mean_exclude for c in classes])
        correct = sum(r[0] for r in results).double().sum().item()
        labelled = sum(r[3] for r in results).double().sum().item()

        def nanmean(values):
            values = values[np.isfinite(values)]
            return float(values.mean()) if values.size else None

        return OrderedDict(
            format=RESULTS_FORMAT,
            classes=classes,
            iou=OrderedDict(
                (c, _finite_or_none(v)) for c, v in zip(classes, iou)),
            mIoU=nanmean(iou),
            mean_exclude=self.mean_exclude,
            mIoU_excl=nanmean(iou[kept]),
            aAcc=correct / labelled if labelled else None,
            num_images=len(results),
            pixels=OrderedDict(
                (name, OrderedDict(zip(classes, counts.tolist())))
                for name, counts in pixel_counts(results).items()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """MMSeg's metrics + ``IoU.<class>`` (+ ``mIoU_excl_*``), percent."""
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        summary = self.results_dict(results)
        for name, value in summary['iou'].items():
            metrics[f'IoU.{name}'] = float('nan') if value is None \
                else value * 100
        if self.mean_exclude:
            value = summary['mIoU_excl']
            metrics[self.excl_key] = float('nan') if value is None \
                else value * 100
        if self.results_file:
            folder = osp.dirname(osp.abspath(self.results_file))
            os.makedirs(folder, exist_ok=True)
            with open(self.results_file, 'w') as f:
                json.dump(summary, f, indent=2)
                f.write('\n')
            print_log(f'per-class IoU written to {self.results_file}',
                      logger='current')
        return metrics
