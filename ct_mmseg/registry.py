"""Registry node of ct_mmseg.

Models and losses are registered straight into MMSeg's own ``MODELS``
registry (so ``default_scope='mmseg'`` configs find them by plain names).
Only the runner and the hook live in child registries with scope
``ct_mmseg``: that lets a config write ``runner_type='ct_mmseg.CTRunner'`` or
``dict(type='ct_mmseg.ContrastiveTransformerHook')`` and have MMEngine import
this package by itself, with no ``custom_imports`` (which stock PoolFormer
configs already define, and mmengine forbids in two sibling ``_base_`` files).
"""
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmengine.registry import Registry

import ct_mmseg  # noqa: F401  (registers the models and the checkpoint loader)

RUNNERS = Registry('runner', parent=MMSEG_RUNNERS, scope='ct_mmseg',
                   locations=['ct_mmseg.runner'])
HOOKS = Registry('hook', parent=MMSEG_HOOKS, scope='ct_mmseg',
                 locations=['ct_mmseg.hooks'])
