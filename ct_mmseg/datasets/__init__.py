"""Datasets registered in MMSeg's ``DATASETS`` registry.

``DubaiAerialDataset``: the Dubai aerial imagery set after
``tools/dataset_converters/dubai_aerial.py`` (``ct_mmseg.datasets.
dubai_aerial`` also holds the converter's functions).
"""
from .dubai_aerial import DubaiAerialDataset

__all__ = ['DubaiAerialDataset']
