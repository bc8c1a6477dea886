"""Evaluation add-ons registered in MMSeg's METRICS registry.

``PerClassIoUMetric``: MMSeg's ``IoUMetric`` that also returns (and can
write to a JSON file) the per-class IoU and a mean without chosen classes
(the paper's Potsdam mIoU leaves out Clutter). Configs load it with
``custom_imports=dict(imports=['ct_mmseg', 'ct_mmseg.evaluation'])``.
"""
from .per_class_iou_metric import (RESULTS_FORMAT, PerClassIoUMetric,
                                   per_class_iou)

__all__ = ['PerClassIoUMetric', 'per_class_iou', 'RESULTS_FORMAT']
