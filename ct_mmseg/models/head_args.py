"""Validation of the ContrastiveTransformerHead's arguments.

Each error names the config key at fault.
"""
from typing import Tuple


def check_stage_args(in_channels, strides, in_index, stage_weights
                      ) -> Tuple[list, list, list, list]:
    """Validate the per-stage lists; name the config key at fault."""
    # Types first, so that no len() fails on an int without naming the key.
    # A scalar here typically comes from writing the CT head over a base
    # config's auxiliary_head: mmengine merges the two dicts (FCNHead's
    # in_index=2, in_channels=384 ...) unless `_delete_=True` replaces it.
    for key, value in (('in_channels', in_channels), ('strides', strides),
                       ('in_index', in_index),
                       ('stage_weights', stage_weights)):
        if value is not None and not isinstance(value, (list, tuple)):
            raise TypeError(
                f'ContrastiveTransformerHead: {key} must be a non-empty '
                f'list (one entry per backbone stage), got {value!r} '
                f'({type(value).__name__}); if it came from the base '
                "config's auxiliary_head, replace that head with "
                'auxiliary_head=dict(_delete_=True, ...) or use the CT '
                'fragment')
    if not in_channels:
        raise ValueError('ContrastiveTransformerHead: in_channels must be a '
                         'non-empty list (one entry per backbone stage), got '
                         f'{in_channels!r}')
    num_stages = len(in_channels)
    if in_index is None:
        in_index = list(range(num_stages))
    for key, value in (('strides', strides), ('in_index', in_index),
                       ('stage_weights', stage_weights)):
        if value is not None and len(value) != num_stages:
            raise ValueError(
                f'ContrastiveTransformerHead: {key} has {len(value)} entries '
                f'but in_channels has {num_stages}; expected {num_stages}')
    if any(not isinstance(c, int) or c < 1 for c in in_channels):
        raise ValueError('ContrastiveTransformerHead: in_channels must hold '
                         f'positive integers, got {list(in_channels)}')
    if any(not isinstance(s, int) or s < 1 for s in strides):
        raise ValueError('ContrastiveTransformerHead: strides must hold '
                         f'positive integers, got {list(strides)}')
    if any(not isinstance(i, int) or i < 0 for i in in_index):
        raise ValueError('ContrastiveTransformerHead: in_index must hold '
                         f'non-negative integers, got {list(in_index)}')
    if stage_weights is None:
        stage_weights = [1.0] * num_stages
    if any(w < 0 for w in stage_weights):
        raise ValueError('ContrastiveTransformerHead: stage_weights must be '
                         f'>= 0, got {list(stage_weights)}')
    return list(in_channels), list(strides), list(in_index), list(stage_weights)


def check_options(memory_size, memory_per_step, positive_purity,
                  cross_rank) -> Tuple[int, int, float, bool]:
    """Check the head's options beyond the paper; return them normalised.

    Args:
        memory_size (int): entries of the cross-image memory per stage and
            class, >= 0 (0: no memory).
        memory_per_step (int): entries each class adds per stage and step,
            >= 1.
        positive_purity (float): tau in (0.5, 1].
        cross_rank (bool): contrast the batches of all ranks.
    """
    from ..core.purity import check_purity
    for key, value, low in (('memory_size', memory_size, 0),
                            ('memory_per_step', memory_per_step, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < low:
            raise ValueError(f'ContrastiveTransformerHead: {key} must be an '
                             f'integer >= {low}, got {value!r}')
    if not isinstance(cross_rank, bool):
        raise TypeError('ContrastiveTransformerHead: cross_rank must be True '
                        f'or False, got {cross_rank!r}')
    return (memory_size, memory_per_step, check_purity(positive_purity),
            cross_rank)
