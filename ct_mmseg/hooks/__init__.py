"""MMEngine hooks of ct_mmseg, one job each.

* :class:`ContrastiveTransformerHook`: CT's statistics in the training log
  (and a guard against a CT config trained without its CT head);
* :class:`CTCheckpointHook`: checkpoints that the plain model loads.
"""
from .checkpoint import CTCheckpointHook
from .statistics import ContrastiveTransformerHook

__all__ = ['ContrastiveTransformerHook', 'CTCheckpointHook']
