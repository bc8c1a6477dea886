"""The stage selection that the multi-stage decode heads share.

DCSwin's and UNetFormer's decoders (and UNetFormer's auxiliary head) fuse a
fixed number of backbone stages, all given at once with MMSeg's
``input_transform='multiple_select'``. :func:`check_stages` rejects any
other selection before the head builds anything.
"""
from typing import Container, Sequence


def check_stages(head: str, in_channels: Sequence[int], input_transform: str,
                 num_stages: Container[int] = (4,),
                 needs: str = 'four stages') -> None:
    """Raise unless ``head`` gets ``num_stages`` stages, 'multiple_select'.

    Args:
        head (str): the head's class name, for the message.
        in_channels (Sequence[int]): widths (C_1, ..., C_n) of the selected
            backbone outputs, one per stage.
        input_transform (str): must be 'multiple_select'.
        num_stages (Container[int]): the accepted numbers n of stages.
            Default (4,).
        needs (str): ``num_stages`` in words, for the message.
            Default 'four stages'.

    Raises:
        ValueError: ``input_transform`` is not 'multiple_select' or
            ``len(in_channels)`` is not in ``num_stages``.
    """
    if (input_transform != 'multiple_select'
            or len(in_channels) not in num_stages):
        raise ValueError(f'{head} needs {needs} with '
                         "input_transform='multiple_select', got "
                         f'{in_channels} / {input_transform}')
