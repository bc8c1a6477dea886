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
        # The runner dumps this config to work_dir; importing ct_mmseg there
        # keeps that copy usable on its own (e.g. by tools/test.py).
        imports = cfg.get('custom_imports') or dict(imports=[])
        if 'ct_mmseg' not in imports.get('imports', []):
            cfg.custom_imports = dict(
                imports=[*imports.get('imports', []), 'ct_mmseg'],
                allow_failed_imports=imports.get('allow_failed_imports', False))
        return super().from_cfg(cfg)
