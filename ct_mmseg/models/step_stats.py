"""StepStats: what the CT head saw in its last training step."""
from typing import NamedTuple

from torch import Tensor


class StepStats(NamedTuple):
    """What the head saw in its last training step, per stage and class.

    Every field is a detached float (S, K) tensor on the head's device, on
    the dataset's classes (0 for a class absent from the batch GT).

    Attributes:
        positives: positive candidate tokens found.
        negatives: negative candidate tokens found.
        pairs: pairs the loss used after hard mining.
        positive_pairs: how many of them were same-class pairs.
        cos_pos: mean cosine of the same-class pairs used (0: none).
        cos_neg: mean cosine of the different-class pairs used (0: none).
        gained_positives: positives that only the purity threshold made
            (``positive_purity < 1``; 0 otherwise).
        memory_fill: entries the cross-image memory holds after the step
            (0 without a memory).
    """
    positives: Tensor
    negatives: Tensor
    pairs: Tensor
    positive_pairs: Tensor
    cos_pos: Tensor
    cos_neg: Tensor
    gained_positives: Tensor
    memory_fill: Tensor
