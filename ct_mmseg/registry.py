"""Registry node of ct_mmseg.

Models and losses are registered straight into MMSeg's own ``MODELS``
registry (so ``default_scope='mmseg'`` configs find them by plain names).
Only the runner lives in a child registry with scope ``ct_mmseg``: that lets a
config write ``runner_type='ct_mmseg.CTRunner'`` and have MMEngine import this
package by itself, with no ``custom_imports`` (which stock PoolFormer configs
already define, and mmengine forbids in two sibling ``_base_`` files).
"""
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmengine.registry import Registry

import ct_mmseg  # noqa: F401  (registers the models and the checkpoint loader)

RUNNERS = Registry('runner', parent=MMSEG_RUNNERS, scope='ct_mmseg',
                   locations=['ct_mmseg.runner'])
