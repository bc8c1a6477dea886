"""Draw keys tied to each image, so a batch split over processes draws alike.

:func:`~ct_mmseg.core.sample_candidates` gives every (class, token) slot of
a batch a uniform random key and keeps the largest keys. Its keys depend on
the batch's layout, so two processes holding half a batch each draw other
candidates than one process holding the whole batch. Here a token's key
depends only on its image's seed, the class and its place in the image:

* each image gets two uniforms ``u_t, v_t`` per token from a generator
  seeded for that image (:func:`image_uniforms`);
* the key of token ``t`` for class ``c`` is ``frac(u_t + (c + 1) * v_t)``
  (:func:`class_keys`). For one class the keys are independent uniforms
  over tokens; for two classes ``c != c'`` the map
  ``(u, v) -> (u + (c + 1) v, u + (c' + 1) v) mod 1`` covers the unit
  square evenly, so the two keys of a token are independent too. Float64,
  so keys do not tie.

Keeping the largest keys of each rank, gathering them and keeping the
largest again (:func:`merge_draws`) gives exactly what one process keeps
from the whole batch.
"""
from typing import List, NamedTuple, Sequence

import torch
from torch import Tensor

from .mining import Candidates


class KeyedDraw(NamedTuple):
    """Candidates drawn by key, with their keys.

    Attributes:
        candidates (Candidates): index / valid / count, (K', W) / (K',).
        keys (Tensor): float64 (K', W), the key of each slot, -1 where the
            slot is not valid (valid slots first, keys descending).
    """
    candidates: Candidates
    keys: Tensor


def image_uniforms(seeds: Sequence[int], tokens_per_image: int,
                   device: torch.device) -> Tensor:
    """Two uniforms per token of each image, from that image's seed.

    Args:
        seeds (Sequence[int]): one seed per image (B,).
        tokens_per_image (int): T, the tokens an image has over all stages.
        device (torch.device): where the generators and result live.

    Returns:
        Tensor: float64 (B, 2, T) in [0, 1).
    """
    # 'meta' (shapes only) has no generator
    generator = None if torch.device(device).type == 'meta' else \
        torch.Generator(device=device)
    rows = []
    for seed in seeds:  # one generator call per image, not per token
        if generator is not None:
            generator.manual_seed(int(seed))
        rows.append(torch.rand(2, tokens_per_image, generator=generator,
                               dtype=torch.float64, device=device))
    return torch.stack(rows)


def split_stages(uniforms: Tensor, grids: Sequence[Sequence[int]]
                 ) -> List[Tensor]:
    """Cut (B, 2, T) per-image uniforms into one (2, B * h * w) table per
    stage, tokens in the order ``b * h * w + row * w + col``.

    Args:
        uniforms (Tensor): float64 (B, 2, T), T = sum of the stages' h * w.
        grids (Sequence[tuple[int, int]]): each stage's (h, w).

    Returns:
        list[Tensor]: per stage float64 (2, B * h * w).
    """
    sizes = [int(h) * int(w) for h, w in grids]
    if sum(sizes) != uniforms.shape[-1]:
        raise ValueError(f'image_keys: {uniforms.shape[-1]} uniforms per '
                         f'image for grids {list(grids)} ({sum(sizes)} '
                         'tokens)')
    return [part.permute(1, 0, 2).reshape(2, -1)
            for part in uniforms.split(sizes, dim=-1)]


def class_keys(stage_uniforms: Tensor, class_ids: Tensor) -> Tensor:
    """The key of every (class, token) slot of a stage.

    Args:
        stage_uniforms (Tensor): float64 (2, N), ``u`` and ``v`` per token.
        class_ids (Tensor): long (K',), dataset class ids.

    Returns:
        Tensor: float64 (K', N), ``frac(u + (c + 1) * v)`` in [0, 1).
    """
    u, v = stage_uniforms
    scale = (class_ids.to(torch.float64) + 1).unsqueeze(1)
    return torch.frac(u.unsqueeze(0) + scale * v.unsqueeze(0))


def draw_by_keys(eligible: Tensor, keys: Tensor, width: int) -> KeyedDraw:
    """Up to ``width`` eligible tokens per class: those with the largest keys.

    Args:
        eligible (Tensor): bool (K', N).
        keys (Tensor): float64 (K', N) in [0, 1).
        width (int): W, the per-class bound (at most N is drawn).

    Returns:
        KeyedDraw: (K', min(W, N)).
    """
    width = max(0, min(int(width), eligible.shape[1]))
    top, index = keys.masked_fill(~eligible, -1.0).topk(width, dim=1)
    valid = top >= 0
    return KeyedDraw(Candidates(index, valid, valid.sum(dim=1)),
                     top.masked_fill(~valid, -1.0))


def merge_draws(keys: Tensor, width: int) -> Candidates:
    """Keep the ``width`` largest keys of several draws of one class set.

    Args:
        keys (Tensor): float64 (K', R * W), the draws of R processes side by
            side (-1: not valid).
        width (int): W.

    Returns:
        Candidates: ``index`` into the R * W slots, (K', min(W, R * W)),
        valid slots first, keys descending.
    """
    width = min(int(width), keys.shape[1])
    top, index = keys.topk(width, dim=1)
    valid = top >= 0
    return Candidates(index, valid, valid.sum(dim=1))
