"""PatchMemory: the CT head's cross-image memory of class embeddings."""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from ..core.losses import MemoryPartners
from ..core.memory import draw_negatives, enqueue, read_positives


class PatchMemory(nn.Module):
    """Per stage and class, a first-in-first-out memory of pure-patch
    embeddings from earlier iterations (detached, L2-normalised).

    The memory lives in buffers (``bank_s{i}`` (K, L, D), ``fill_s{i}`` and
    ``cursor_s{i}`` (K,)), so MMEngine's checkpoints save it and a resumed
    run continues with the memory the interrupted one had. A step reads the
    memory of the classes present in its batch only (cost sized by those
    classes, not by K) and then adds its own positives.

    Args:
        num_stages (int): S.
        num_classes (int): K.
        size (int): L, entries per stage and class.
        channels (int): D, the projection width.
        per_step (int): entries a class adds per stage and step.
    """

    def __init__(self, num_stages: int, num_classes: int, size: int,
                 channels: int, per_step: int):
        super().__init__()
        self.size = size
        self.per_step = per_step
        for stage in range(num_stages):
            self.register_buffer(f'bank_s{stage}',
                                 torch.zeros(num_classes, size, channels))
            self.register_buffer(f'fill_s{stage}',
                                 torch.zeros(num_classes, dtype=torch.long))
            self.register_buffer(f'cursor_s{stage}',
                                 torch.zeros(num_classes, dtype=torch.long))
        self.num_stages = num_stages

    def _state(self, stage: int):
        return (getattr(self, f'bank_s{stage}'),
                getattr(self, f'fill_s{stage}'),
                getattr(self, f'cursor_s{stage}'))

    def partners(self, stage: int, class_ids: Tensor, width: int,
                 generator: Optional[torch.Generator]) -> MemoryPartners:
        """The memory's partners for the classes ``class_ids`` (K',).

        Positives: the class's own memory, (K', L, D). Negatives: up to
        ``min(width, L)`` entries per class drawn from the memory of the
        other classes of ``class_ids``, (K', W, D).
        """
        bank, fill, _ = self._state(stage)
        positives, num_positives = read_positives(bank, fill, class_ids)
        negatives, num_negatives = draw_negatives(
            bank, fill, class_ids, min(width, self.size), generator)
        return MemoryPartners(positives, num_positives, negatives,
                              num_negatives)

    @torch.no_grad()
    def update(self, stage: int, class_ids: Tensor, positives: Tensor,
               counts: Tensor) -> None:
        """Add up to ``per_step`` of each class's positives (K', M, D),
        valid rows first (``counts`` (K',)), oldest entries first out."""
        bank, fill, cursor = self._state(stage)
        enqueue(bank, fill, cursor, class_ids, positives.detach(), counts,
                self.per_step)

    def fill(self) -> Tensor:
        """float (S, K): entries held per stage and class."""
        return torch.stack([self._state(s)[1]
                            for s in range(self.num_stages)]).float()
