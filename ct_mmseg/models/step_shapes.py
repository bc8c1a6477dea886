"""The one host-device synchronisation of a CT training step."""
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def step_shapes_to_host(present: Tensor, most_positives: Tensor,
                        images: Optional[Tensor] = None
                        ) -> Tuple[List[int], List[int], int]:
    """The classes present and each stage's largest positive count, on the host.

    The one host-device synchronisation of a CT step on CUDA: these numbers
    decide the shapes, and they buy a cost that follows the classes present
    and the positives there are, instead of the dataset's class count and
    the ``num_samples`` bound. Everything after it has shapes that do not
    depend on the data.

    Args:
        present (Tensor): bool (K,), classes with a pixel in the batch GT.
        most_positives (Tensor): long (S,), per stage the most positive
            tokens any class has.
        images (Tensor, optional): long (1,), the images of the batch (of
            all ranks under cross-rank contrast).

    Returns:
        tuple[list[int], list[int], int]: the present class ids, ascending,
        the S counts and the number of images (0 without ``images``).
    """
    parts = [present.long(), most_positives.long()]
    if images is not None:
        parts.append(images.long().reshape(1))
    host = torch.cat(parts).tolist()
    num_classes, num_stages = present.numel(), most_positives.numel()
    return ([k for k, flag in enumerate(host[:num_classes]) if flag],
            host[num_classes:num_classes + num_stages],
            host[-1] if images is not None else 0)
