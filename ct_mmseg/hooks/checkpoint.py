"""CTCheckpointHook: CT checkpoints that the plain model loads as they are."""
from mmengine.hooks import Hook

from .. import checkpoint_format
from ..config_injection import LAYOUT_KEY
from ..export import config_layout
from ..registry import HOOKS
from .statistics import unwrap


@HOOKS.register_module()
class CTCheckpointHook(Hook):
    """Writes CT runs' checkpoints in :mod:`ct_mmseg.checkpoint_format`.

    * Before a save (CT runner): the state dict becomes the plain model's
      (the config without CT: what MMSeg's ``tools/test.py``, ``init_model``
      and ``MMSegInferencer`` build), the CT heads' tensors move to the
      checkpoint's ``ct_mmseg`` section, and the message hub is written as
      plain Python values. Such a checkpoint loads into the plain model with
      no missing or unexpected key, in a process that never imported
      ct_mmseg, with torch's ``weights_only=True``.
    * After a load (``--resume``, ``load_from``, ``tools/test.py``): the CT
      tensors go back into a model that has CT heads, and are dropped for
      one that has none. A plain (baseline) checkpoint loads into the CT
      model with only the CT heads missing.

    The CT fragment lists it under ``custom_hooks``. Configs that write the
    CT head by hand (no fragment, no injection) keep MMEngine's format.
    """

    priority = 'VERY_LOW'  # after every hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        layout = runner.cfg.get(LAYOUT_KEY)
        model = unwrap(runner.model)
        if layout is not None and checkpoint_format.ct_head_prefixes(model):
            checkpoint_format.write_plain(checkpoint, model, layout)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        layout = config_layout(runner.cfg) if 'model' in runner.cfg \
            else runner.cfg.get(LAYOUT_KEY)
        checkpoint_format.read_plain(checkpoint, unwrap(runner.model),
                                     layout)
