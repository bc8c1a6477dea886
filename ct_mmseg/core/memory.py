"""A cross-image memory of class embeddings: one FIFO ring per class (plain
torch).

The state of one stage's memory is three tensors (the head holds them as
buffers):

* ``bank``: float (K, L, D), K dataset classes, L entries per class,
  D embedding width;
* ``fill``: long (K,), entries held per class (<= L);
* ``cursor``: long (K,), the slot the next entry of the class is written to.

A ring starts empty (``fill = cursor = 0``) and is written from slot 0, so
the held entries of a class are its slots ``< fill``: valid rows come first.
Everything here is detached: the memory receives no gradient.

The functions take ``class_ids``, long (K',), the distinct dataset classes
asked about (the classes present in the batch); their outputs are sized by
K', never by K.
"""
from typing import Optional, Tuple

import torch

from .mining import sample_candidates


def _check_tensor(name: str, tensor, dim: int, integer: bool = False) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f'{name} must be a torch.Tensor, got '
                         f'{type(tensor).__name__}')
    if tensor.dim() != dim:
        raise ValueError(f'{name} must have {dim} dimension(s), got shape '
                         f'{tuple(tensor.shape)}')
    if integer and (tensor.dtype.is_floating_point or tensor.is_complex()
                    or tensor.dtype == torch.bool):
        raise ValueError(f'{name} must hold integers, got {tensor.dtype}')


def _check_length(name: str, tensor: torch.Tensor, length: int,
                  what: str) -> None:
    if tensor.shape[0] != length:
        raise ValueError(f'{name} must have {length} rows ({what}), got '
                         f'shape {tuple(tensor.shape)}')


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f'{name} must be an integer >= 0, got {value!r}')
    return int(value)


def _check_bank(bank: torch.Tensor, fill: torch.Tensor,
                class_ids: torch.Tensor) -> None:
    _check_tensor('bank', bank, 3)
    if bank.shape[1] < 1:
        raise ValueError('bank must hold at least one entry per class '
                         f'(L >= 1), got shape {tuple(bank.shape)}')
    _check_tensor('fill', fill, 1, integer=True)
    _check_length('fill', fill, bank.shape[0], 'one per class of bank')
    _check_tensor('class_ids', class_ids, 1, integer=True)


def enqueue(bank: torch.Tensor, fill: torch.Tensor, cursor: torch.Tensor,
            class_ids: torch.Tensor, entries: torch.Tensor,
            counts: torch.Tensor, per_step: int) -> None:
    """Write new entries into the rings of the given classes, in place.

    Class ``class_ids[j]`` receives the first ``n_j = min(counts[j],
    per_step, L)`` rows of ``entries[j]`` at slots ``cursor, cursor + 1, ...,
    cursor + n_j - 1`` (mod L), overwriting its oldest entries once the ring
    is full; then ``cursor = (cursor + n_j) mod L`` and
    ``fill = min(fill + n_j, L)``. All classes are written at once (one
    gather and one scatter of (K', W, D), W = min(M, per_step, L)), with no
    host-device synchronisation.

    Args:
        bank (Tensor): float (K, L, D), the memory; written in place.
        fill (Tensor): long (K,), entries held; updated in place.
        cursor (Tensor): long (K,), next slot to write; updated in place.
        class_ids (Tensor): long (K',), distinct classes to write, in [0, K).
        entries (Tensor): float (K', M, D), L2-normalised embeddings of each
            class, valid rows first; stored detached, in ``bank``'s dtype.
        counts (Tensor): long (K',), valid rows of ``entries`` per class
            (<= M).
        per_step (int): at most this many entries per class and call.
    """
    _check_bank(bank, fill, class_ids)
    _check_tensor('cursor', cursor, 1, integer=True)
    _check_length('cursor', cursor, bank.shape[0], 'one per class of bank')
    num_asked = class_ids.shape[0]
    _check_tensor('entries', entries, 3)
    _check_length('entries', entries, num_asked, 'one per class_ids')
    if entries.shape[2] != bank.shape[2]:
        raise ValueError(f'entries must have width D = {bank.shape[2]} as '
                         f'bank, got shape {tuple(entries.shape)}')
    _check_tensor('counts', counts, 1, integer=True)
    _check_length('counts', counts, num_asked, 'one per class_ids')
    per_step = _check_count('per_step', per_step)
    size = bank.shape[1]
    width = min(entries.shape[1], per_step, size)
    if width == 0 or num_asked == 0:
        return
    with torch.no_grad():
        class_ids = class_ids.long()
        written = counts.long().clamp(min=0, max=width)  # (K',)
        start = cursor.index_select(0, class_ids).long()  # (K',)
        offsets = torch.arange(width, device=bank.device)
        # width <= L: the W slots of one class are distinct, and the classes
        # are distinct, so every (class, slot) below is written once
        slots = (start.unsqueeze(1) + offsets) % size  # (K', W)
        rows = class_ids.unsqueeze(1).expand(-1, width)  # (K', W)
        new = entries[:, :width].detach().to(bank.dtype)
        write = (offsets.unsqueeze(0) < written.unsqueeze(1)).unsqueeze(-1)
        # the rows beyond n_j keep their old value (no data-dependent shape)
        bank[rows, slots] = torch.where(write, new, bank[rows, slots])
        cursor.index_copy_(0, class_ids,
                           ((start + written) % size).to(cursor.dtype))
        held = fill.index_select(0, class_ids).long() + written
        fill.index_copy_(0, class_ids, held.clamp(max=size).to(fill.dtype))


def read_positives(bank: torch.Tensor, fill: torch.Tensor,
                   class_ids: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The memory of the asked classes: partners of their own positives.

    Args:
        bank (Tensor): float (K, L, D).
        fill (Tensor): long (K,), entries held.
        class_ids (Tensor): long (K',), classes in [0, K).

    Returns:
        tuple: float (K', L, D), detached, the ring of each asked class
        (slots ``< fill`` are valid and come first), and long (K',), the
        number of valid rows.
    """
    _check_bank(bank, fill, class_ids)
    class_ids = class_ids.long()
    return (bank.detach().index_select(0, class_ids),
            fill.index_select(0, class_ids).long())


def draw_negatives(bank: torch.Tensor, fill: torch.Tensor,
                   class_ids: torch.Tensor, width: int,
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Memory negatives of each asked class, drawn from the other asked
    classes.

    For the asked class j, up to ``width`` entries are drawn uniformly
    without replacement among the held entries of the other asked classes
    (those with a different class id), never from its own ring nor from a
    class that was not asked. The (K', K' * L) eligibility mask goes through
    :func:`~ct_mmseg.core.mining.sample_candidates`; the drawn rows are
    taken straight from the flattened bank with one ``index_select`` (no
    (K', K' * L, D) tensor).

    Args:
        bank (Tensor): float (K, L, D).
        fill (Tensor): long (K,), entries held.
        class_ids (Tensor): long (K',), classes in [0, K).
        width (int): W, the most entries drawn per class.
        generator (torch.Generator, optional): for reproducible draws; it
            must live on ``bank.device``.

    Returns:
        tuple: float (K', W', D), detached, W' = min(W, K' * L), the drawn
        entries, valid rows first (the others are zero), and long (K',), the
        number of valid rows.
    """
    _check_bank(bank, fill, class_ids)
    width = _check_count('width', width)
    num_asked = class_ids.shape[0]
    size, dim = bank.shape[1:]
    class_ids = class_ids.long()
    with torch.no_grad():
        slots = torch.arange(size, device=bank.device)
        held = (slots.unsqueeze(0) <
                fill.index_select(0, class_ids).unsqueeze(1))  # (K', L)
        owner = class_ids.repeat_interleave(size)  # (K' * L,)
        eligible = held.reshape(1, -1) & (owner.unsqueeze(0) !=
                                          class_ids.unsqueeze(1))
        drawn = sample_candidates(eligible, width, generator)
        # candidate c is slot c % L of asked class c // L
        flat = (owner.index_select(0, drawn.index.flatten()) * size +
                drawn.index.flatten() % size)
        rows = bank.detach().reshape(-1, dim).index_select(0, flat).view(
            num_asked, drawn.index.shape[1], dim)
        rows = rows.masked_fill(~drawn.valid.unsqueeze(-1), 0.0)
    return rows, drawn.count
