"""CT's random numbers never come from, or move, the global generators.

A config and its CT variant must differ in CT only: the same seed must give
every shared module the same initial weights, and dropout, drop-path and
data augmentation the same random stream. Building and initialising the CT
head would otherwise draw from torch's global generator between the
backbone's construction and ``init_weights()``, and its candidate draws
during training would shift every later dropout mask.
"""
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def global_rng_untouched():
    """Run a block with torch's global generators restored afterwards.

    The CPU generator always; the CUDA generators of the visible devices
    when CUDA is initialised (modules are usually built on the CPU, but a
    default CUDA device would build them there). Inside the block the
    generators continue from their current state, so what is drawn there
    still depends on the run's seed.
    """
    devices = list(range(torch.cuda.device_count())) \
        if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


def mix_seed(seed: int, step: int, rank: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed that depends only on (seed, step, rank)
    (``stream`` > 0: another stream, e.g. per image instead of per rank)."""
    words = [seed % 2**63, step, rank] + ([stream] if stream else [])
    state = np.random.SeedSequence(words)
    return int(state.generate_state(1, np.uint64)[0] >> np.uint64(1))
