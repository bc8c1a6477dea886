"""Test-time cost of a segmentor: what actually runs at inference."""
from typing import Callable, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def params_run_by(model: nn.Module, fn: Callable[[], object]) -> int:
    """Number of parameters of the modules that actually run during ``fn()``.

    A module's own parameters count when its forward is called; heads that
    exist only for training (auxiliary heads, CT's projections) do not.
    """
    ran = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: ran.add(mod))
             for m in model.modules()]
    try:
        fn()
    finally:
        for hook in hooks:
            hook.remove()
    used = {id(p): p for m in ran for p in m.parameters(recurse=False)}
    return sum(p.numel() for p in used.values())


def inference_cost(model: nn.Module,
                   inputs: torch.Tensor) -> Tuple[dict, torch.Tensor]:
    """FLOPs and parameters of ``model.predict(inputs)``, and its logits.

    Args:
        model: an MMSeg segmentor.
        inputs (Tensor): (B, 3, H, W) preprocessed images.

    Returns:
        tuple: ``dict(flops, params, params_total)`` and the seg logits of
        the first image, (num_classes, H, W). The model's training mode is
        restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                logits = model.predict(inputs)[0].seg_logits.data
            params = params_run_by(model, lambda: model.predict(inputs))
    finally:
        model.train(was_training)
    return dict(flops=int(counter.get_total_flops()), params=int(params),
                params_total=sum(p.numel() for p in model.parameters())), \
        logits
