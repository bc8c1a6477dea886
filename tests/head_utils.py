"""The small CT head and its inputs that several test modules share: a
``ContrastiveTransformerHead`` on 4 stages, seeded features and block GT."""
import torch
from mmseg.registry import MODELS

CHANNELS = [8, 16, 32, 64]
STRIDES = [4, 8, 16, 32]


def build_head(**kwargs):
    cfg = dict(type='ContrastiveTransformerHead', in_channels=CHANNELS,
               strides=STRIDES, num_classes=6, proj_channels=16, seed=0)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def features(batch, size, requires_grad=True, scale=1.0):
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(batch, c, -(-size // s), -(-size // s),
                         generator=gen) * scale).requires_grad_(requires_grad)
            for c, s in zip(CHANNELS, STRIDES)]


def blocky_gt(batch, size, num_classes=6, block=16):
    """Class blocks of ``block`` px so every stage sees pure patches."""
    gen = torch.Generator().manual_seed(1)
    cells = torch.randint(0, num_classes, (batch, -(-size // block),
                                           -(-size // block)), generator=gen)
    gt = cells.repeat_interleave(block, 1).repeat_interleave(block, 2)
    return gt[:, :size, :size]
