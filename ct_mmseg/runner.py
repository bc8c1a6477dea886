"""CTRunner: MMEngine's Runner that adds CT to the model config first."""
import copy

from mmengine.runner import Runner

from .config_injection import add_ct_to_config
from .registry import RUNNERS


@RUNNERS.register_module()
class CTRunner(Runner):
    """:class:`mmengine.runner.Runner` + :func:`add_ct_to_config`.

    Selected by ``runner_type='ct_mmseg.CTRunner'`` (set by the CT config
    fragment). MMSeg's ``tools/train.py`` and ``tools/test.py`` (and ``mim``)
    build ``RUNNERS.build(cfg)`` when ``runner_type`` is set, so they pick it
    up unchanged. Everything else is MMEngine's runner.
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'Runner':
        cfg = copy.deepcopy(cfg)
        add_ct_to_config(cfg)
        return super().from_cfg(cfg)
