"""Projection of backbone tokens: gather, MLP head, L2 norm in one autograd node.

The CT head projects the tokens it drew (or, when it drew more tokens than
the stage has, every token) with a small ``Linear[-GELU-Linear]*`` head and
L2-normalises them. Done with ``nn.Module`` calls and autograd, that is a
dozen nodes per stage, each saving its input, plus the gather from the
channels-first feature map whose backward is a slow scattered ``index_put``.
:func:`project_tokens` computes the same values with a hand-written backward
that

* never copies the feature map: drawn tokens are gathered in sorted memory
  order (cache-friendly on a channels-first map) and their gradient is
  scattered back the same way; when every token is projected, batched
  matrix products read the (B, C, h*w) map in place and write the gradient
  straight into that layout;
* keeps only what backward needs: the output (which the loss keeps anyway)
  and its norms, and either the hidden pre-activations
  (``recompute_hidden=False``) or nothing else, the hidden layers then being
  recomputed from the re-gathered tokens;
* needs no extra matrix product for the last layer, unlike recomputing the
  whole head with ``torch.utils.checkpoint``;
* on the CPU runs the head once per distinct drawn token: a token drawn as
  a negative of several classes is projected once
  (:func:`projected_tokens`).

Values equal the module path's up to float rounding (tested); the head keeps
the plain module path for projection heads of any other form.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

NORM_EPS = 1e-12  # F.normalize's default


def mlp_linears(projector: nn.Module) -> Optional[List[nn.Linear]]:
    """The Linear layers of a ``Linear[-GELU-Linear]*`` head, else None.

    :func:`project_tokens` computes exactly that form (exact, erf GELU);
    any other head (a user's own module) has to go through autograd.
    """
    if not isinstance(projector, nn.Sequential) or len(projector) % 2 != 1:
        return None
    layers = list(projector)
    linears, gelus = layers[0::2], layers[1::2]
    if not all(type(m) is nn.Linear for m in linears):
        return None
    if not all(type(m) is nn.GELU and m.approximate == 'none' for m in gelus):
        return None
    return linears


def gather_tokens(feat: Tensor, index: Tensor) -> Tensor:
    """(n, C) rows ``index`` of a (B, C, h, w) map, ``b * h * w + row * w + col``.

    Sorted indices are much faster on a channels-first map: neighbouring
    tokens then share cache lines (half the time of draw order).
    """
    batch, channels = feat.shape[:2]
    area = feat.shape[2] * feat.shape[3]
    return feat.reshape(batch, channels, area)[index // area, :, index % area]


def projects_every_token(feat: Tensor, num_drawn: int) -> bool:
    """Whether drawing ``num_drawn`` tokens of a (B, C, h, w) map should
    instead project each of its tokens once and pick the drawn rows: when
    there are at least as many draws as tokens."""
    batch, _, height, width = feat.shape
    return batch * height * width <= num_drawn


def scatter_tokens(grad_rows: Tensor, index: Tensor,
                   shape: Sequence[int]) -> Tensor:
    """Adjoint of :func:`gather_tokens`: (B, C, h, w) zeros plus each row
    added at its token, repeated tokens summed in row order."""
    batch, channels, height, width = shape
    area = height * width
    grad = grad_rows.new_zeros(batch, channels, area)
    grad.transpose(1, 2).index_put_((index // area, index % area), grad_rows,
                                    accumulate=True)
    return grad.view(batch, channels, height, width)


class _ProjectTokens(torch.autograd.Function):
    """See :func:`project_tokens`. Inputs after ``recompute_hidden`` and
    ``distinct``: the weights and biases of the Linear layers, interleaved.

    The head runs on the projected tokens ``tokens`` (sorted indices, or
    None for every token) and the drawn rows are picked from its output
    by ``rows``; see :func:`projected_tokens`. Sorted tokens make the
    gather and the scatter of the gradient read and write the map's cache
    lines in sequence.
    """

    @staticmethod
    def forward(ctx, feat, index, recompute_hidden, distinct, *params):
        # fp32 whatever AMP or the backbone use, so that the norms cannot
        # overflow; fp64 stays fp64 (gradcheck)
        dtype = torch.float64 if torch.float64 in (
            feat.dtype, params[0].dtype) else torch.float32
        weights = [p.to(dtype) for p in params[0::2]]
        biases = [p.to(dtype) for p in params[1::2]]
        tokens, rows = projected_tokens(feat, index, distinct)
        hidden, out = _mlp_forward(feat, tokens, weights, biases, dtype)
        norm = torch.linalg.vector_norm(out, dim=1, keepdim=True)
        norm = norm.clamp_min_(NORM_EPS)
        out = out.div_(norm)  # F.normalize's arithmetic
        # the drawn rows in draw order: the only (n, D) tensor backward
        # keeps, the one the loss keeps anyway (the normalisation acts row
        # by row, so its backward runs on the drawn rows before their
        # gradients are summed per projected token)
        out = out.index_select(0, rows)
        norm = norm.index_select(0, rows)
        ctx.recompute_hidden = recompute_hidden
        ctx.param_dtypes = [p.dtype for p in params]
        ctx.save_for_backward(feat, tokens, rows, out, norm,
                              *(() if recompute_hidden else hidden),
                              *weights, *biases)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        # Written for a low peak: CT's backward runs at the start of the
        # model's backward, when every activation is still alive, so each
        # (n, D) temporary is freed as soon as it is used (``del``), the
        # GELU derivative is written over its input, and the tokens are
        # gathered again rather than kept across the hidden layers.
        feat, tokens, rows, out, norm, *rest = ctx.saved_tensors
        num_layers = len(ctx.param_dtypes) // 2
        weights = rest[-2 * num_layers:-num_layers]
        hidden = list(rest[:-2 * num_layers])
        dtype = weights[0].dtype  # the compute dtype forward cast them to
        grad_out = grad_out.to(dtype)
        # d normalize, per drawn row: (g - y (g . y)) / |z|; the row dot
        # products as a batched product, without an (n, D) temporary
        dot = torch.bmm(grad_out.unsqueeze(1), out.unsqueeze(2)).view(-1, 1)
        grad_rows = torch.addcmul(grad_out, out, dot, value=-1).div_(norm)
        del dot
        # summed per projected token (a plain reordering where each token
        # was drawn once)
        num_projected = feat.shape[0] * feat.shape[2] * feat.shape[3] \
            if tokens is None else tokens.numel()
        grad = grad_rows.new_zeros(num_projected, grad_rows.shape[1]
                                   ).index_add_(0, rows, grad_rows)
        del grad_rows
        if ctx.recompute_hidden and num_layers > 1:
            hidden, _ = _mlp_forward(feat, tokens, weights[:-1],
                                     rest[-num_layers:-1], dtype, last=False)
        grads: List[Optional[Tensor]] = [None] * (2 * num_layers)
        for layer in reversed(range(1, num_layers)):
            if ctx.needs_input_grad[5 + 2 * layer]:
                grads[2 * layer + 1] = grad.sum(0)
            if ctx.needs_input_grad[4 + 2 * layer]:
                grads[2 * layer] = grad.t().mm(F.gelu(hidden[layer - 1]))
            grad_hidden = grad.mm(weights[layer])
            del grad
            grad = _gelu_backward_into(grad_hidden, hidden[layer - 1])
            hidden[layer - 1] = None
            del grad_hidden
        del hidden
        if ctx.needs_input_grad[5]:
            grads[1] = grad.sum(0)
        if ctx.needs_input_grad[4]:
            grads[0] = _first_layer_weight_grad(
                _first_layer_input(feat, tokens, dtype), grad)
        grad_feat = None
        if ctx.needs_input_grad[0]:
            grad_feat = _first_layer_input_grad(
                grad, weights[0], tokens, feat.shape).to(feat.dtype)
        del grad
        grads = [g if g is None else g.to(dtype)
                 for g, dtype in zip(grads, ctx.param_dtypes)]
        return (grad_feat, None, None, None, *grads)


def projected_tokens(feat: Tensor, index: Tensor,
                     distinct: Optional[bool] = None
                     ) -> Tuple[Optional[Tensor], Tensor]:
    """Which tokens of a (B, C, h, w) map to run the head on for the draws
    ``index``, and where each draw's row is in the head's output.

    * At least as many draws as tokens: every token (``None``), and the
      rows are the draws themselves.
    * ``distinct``: each distinct drawn token once, sorted. A token is a
      negative of every class it does not hold, so one drawn for several
      classes is projected once (at stride 4 with 6 classes present, about
      a quarter of the draws are repeats).
    * else the draws sorted, repeats included: shapes that do not depend
      on the draws.

    Args:
        feat (Tensor): (B, C, h, w) stage output.
        index (Tensor): long (n,), drawn token indices.
        distinct (bool, optional): see above. Default None: on the CPU
            only. How many tokens are distinct depends on the draws; on the
            CPU that costs nothing, on a GPU reading it would be a second
            host-device synchronisation per stage.

    Returns:
        tuple: ``tokens``, long (u,) sorted token indices or None (every
        token), and ``rows``, long (n,): draw j is row ``rows[j]`` of the
        head's output.
    """
    if projects_every_token(feat, index.numel()):
        return None, index
    if distinct is None:
        distinct = index.device.type == 'cpu'
    if distinct:
        tokens, rows = torch.unique(index, sorted=True, return_inverse=True)
        return tokens, rows
    tokens, order = torch.sort(index, stable=True)
    rows = torch.empty_like(order).scatter_(
        0, order, torch.arange(order.numel(), device=order.device))
    return tokens, rows


def _gelu_backward_into(grad: Tensor, pre_activation: Tensor) -> Tensor:
    """GELU's backward written over ``grad`` (no new (n, D) tensor). On the
    meta device (shape checks) the plain op: torch < 2.2's meta
    decomposition has no out= form."""
    if grad.device.type == 'meta':
        return torch.ops.aten.gelu_backward(grad, pre_activation,
                                            approximate='none')
    return torch.ops.aten.gelu_backward.grad_input(
        grad, pre_activation, approximate='none', grad_input=grad)


def _first_layer_input(feat: Tensor, tokens: Optional[Tensor],
                       dtype: torch.dtype) -> Tensor:
    """The tokens at the (sorted) indices ``tokens`` as (u, C) rows or, when
    None, every token as a (B, h*w, C) view of the map (no copy: batched
    products read it as transposed matrices), in the compute dtype."""
    if tokens is None:
        return feat.reshape(feat.shape[0], feat.shape[1], -1).transpose(
            1, 2).to(dtype)
    return gather_tokens(feat, tokens).to(dtype)


def _mlp_forward(feat, tokens, weights, biases, dtype, last=True):
    """Hidden pre-activations and the last layer's output (pre-norm), for
    the (sorted) token indices ``tokens`` or, when None, every token."""
    inputs = _first_layer_input(feat, tokens, dtype)
    if inputs.dim() == 3:  # every token: batched over the images
        out = torch.baddbmm(biases[0], inputs,
                            weights[0].t().expand(feat.shape[0], -1, -1))
        out = out.reshape(-1, weights[0].shape[0])
    else:
        out = torch.addmm(biases[0], inputs, weights[0].t())
    hidden = []
    for weight, bias in zip(weights[1:], biases[1:]):
        hidden.append(out)
        out = torch.addmm(bias, F.gelu(out), weight.t())
    if not last:
        hidden.append(out)
    return hidden, out


def _first_layer_weight_grad(inputs, grad):
    if inputs.dim() == 3:  # every token, (B, h*w, C)
        grad = grad.view(inputs.shape[0], -1, grad.shape[1]).transpose(1, 2)
        return torch.bmm(grad, inputs).sum(0)
    return grad.t().mm(inputs)


def _first_layer_input_grad(grad, weight, tokens, shape):
    batch, channels, height, width = shape
    if tokens is None:  # straight into the (B, C, h*w) layout
        grad = grad.view(batch, -1, grad.shape[1]).transpose(1, 2)
        out = torch.bmm(weight.t().expand(batch, -1, -1), grad)
        return out.view(batch, channels, height, width)
    return scatter_tokens(grad.mm(weight), tokens, shape)


def project_tokens(feat: Tensor, index: Tensor, linears: Sequence[nn.Linear],
                   recompute_hidden: bool = True,
                   distinct: Optional[bool] = None) -> Tensor:
    """L2-normalised projections of tokens ``index`` of a feature map, fp32.

    The same values as ``F.normalize(head(tokens), dim=-1)`` for a
    ``Linear[-GELU-Linear]*`` head (see :func:`mlp_linears`), with the memory
    and time of one fused autograd node (module docstring).

    Args:
        feat (Tensor): (B, C, h, w) stage output, any float dtype.
        index (Tensor): long (n,), token indices ``b * h * w + row * w +
            col``; repeats allowed. When n >= B * h * w every token is
            projected once and the rows are picked from the result; else,
            on the CPU, each distinct drawn token once.
        linears (list[nn.Linear]): the head's layers, GELU between them.
        recompute_hidden (bool): keep no hidden activation for backward and
            recompute them there (one product per hidden layer; the last
            layer, the largest share of a deep head, is never recomputed).
            Default True.
        distinct (bool, optional): run the head once per distinct drawn
            token (see :func:`projected_tokens`). Default None: on the CPU
            only. Same values up to float rounding.

    Returns:
        Tensor: (n, D), float32 (float64 if the map or the head is).
    """
    params = [t for lin in linears for t in (lin.weight, lin.bias)]
    if any(t is None for t in params):
        raise ValueError('project_tokens: every Linear layer needs a bias')
    return _ProjectTokens.apply(feat, index, recompute_hidden, distinct,
                                *params)
