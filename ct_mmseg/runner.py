"""The CT runners: MMEngine's Runner or FlexibleRunner, CT added to the
model config first.

Both share one injection, :func:`prepare_ct_config`; the runner class adds
nothing else. The fragment's ``runner_type='ct_mmseg.CTRunner'`` picks the
class from the config: a ``strategy`` key (FlexibleRunner's, e.g.
``strategy=dict(type='FSDPStrategy')`` or ``'DeepSpeedStrategy'``) gives a
:class:`CTFlexibleRunner`, no ``strategy`` gives a :class:`CTRunner`.
"""
import copy

from mmengine.runner import FlexibleRunner, Runner

from .config_injection import add_ct_to_config
from .registry import RUNNERS


def prepare_ct_config(cfg):
    """A copy of ``cfg`` with the CT head added to ``cfg.model``.

    Also makes the config import ``ct_mmseg``: the runner dumps it to
    ``work_dir``, and that copy must work on its own (e.g. in
    ``tools/test.py``, which builds the model it describes).
    """
    cfg = copy.deepcopy(cfg)
    add_ct_to_config(cfg)
    imports = cfg.get('custom_imports') or dict(imports=[])
    if 'ct_mmseg' not in imports.get('imports', []):
        cfg.custom_imports = dict(
            imports=[*imports.get('imports', []), 'ct_mmseg'],
            allow_failed_imports=imports.get('allow_failed_imports', False))
    return cfg


@RUNNERS.register_module()
class CTRunner(Runner):
    """:class:`mmengine.runner.Runner` + :func:`prepare_ct_config`.

    Selected by ``runner_type='ct_mmseg.CTRunner'`` (set by the CT config
    fragment). MMSeg's ``tools/train.py`` and ``tools/test.py`` (and ``mim``)
    build ``RUNNERS.build(cfg)`` when ``runner_type`` is set, so they pick it
    up unchanged. A config with a ``strategy`` (FSDP, DeepSpeed, ...) gets a
    :class:`CTFlexibleRunner` instead.
    """

    @classmethod
    def from_cfg(cls, cfg) -> Runner:
        if cfg.get('strategy') is not None:
            return CTFlexibleRunner.from_cfg(cfg)
        return super().from_cfg(prepare_ct_config(cfg))


@RUNNERS.register_module()
class CTFlexibleRunner(FlexibleRunner):
    """:class:`mmengine.runner.FlexibleRunner` + :func:`prepare_ct_config`.

    Chosen by :class:`CTRunner` when the config sets ``strategy``, or by
    name: ``runner_type='ct_mmseg.CTFlexibleRunner'``.
    """

    @classmethod
    def from_cfg(cls, cfg) -> FlexibleRunner:
        return super().from_cfg(prepare_ct_config(cfg))
