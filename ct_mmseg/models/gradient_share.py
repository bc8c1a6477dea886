"""CT's share of the gradient reaching the backbone (``grad_stats``).

:func:`track_gradient_share` puts an identity between a backbone stage
output and the CT head. In backward, the identity sees the gradient of CT's
loss alone, and a tensor hook on the stage output sees the total (CT + the
segmentation losses); the rest follows by subtraction. Both squared norms
are added into a device tensor: no host sync.
"""
import torch
from torch import Tensor


class _CTGradientTap(torch.autograd.Function):
    """Identity whose backward records the gradient of CT's loss alone."""

    @staticmethod
    def forward(ctx, feat, state):
        ctx.state = state
        return feat.view_as(feat)

    @staticmethod
    def backward(ctx, grad):
        ctx.state['norms'][0] += grad.float().pow(2).sum()
        ctx.state['ct_grad'] = grad
        return grad, None


def track_gradient_share(feat: Tensor, norms: Tensor) -> Tensor:
    """``feat`` for the CT path, with its gradients measured into ``norms``.

    Args:
        feat (Tensor): a backbone stage output, (B, C, h, w), requiring grad.
        norms (Tensor): float (2,) on the same device; backward adds the
            squared norm of CT's gradient to ``norms[0]`` and that of the
            other losses' gradient to ``norms[1]``.

    Returns:
        Tensor: ``feat`` unchanged in value.
    """
    state = dict(norms=norms, ct_grad=None)

    def record_rest(total: Tensor) -> None:
        ct_grad = state.pop('ct_grad', None)
        rest = total if ct_grad is None else total - ct_grad
        norms[1] += rest.float().pow(2).sum()
        handle.remove()

    handle = feat.register_hook(record_rest)
    return _CTGradientTap.apply(feat, state)
