"""Where MMEngine's training loop is, for modules that depend on it."""
from typing import Optional

from mmengine.logging import MessageHub


def training_iteration() -> Optional[int]:
    """The current MMEngine training iteration, or None outside a loop.

    MMEngine's ``RuntimeInfoHook`` writes it into the message hub before
    each training step (and restores it on resume).
    """
    step = MessageHub.get_current_instance().get_info('iter')
    return step if isinstance(step, int) else None
