"""The head's losses and gradients on fixed inputs, pinned.

Refactoring the head, the loss module or the core must not change a value:
these numbers were computed by the code before CT's reduction moved into
one place (``ct_mmseg/core/reduction.py``) and must stay within float
rounding of them. Inputs: the seeded features and block GT of
``head_utils``, projection weights from ``torch.manual_seed(0)``.
"""
import itertools

import pytest
import torch

from conftest import make_samples
from head_utils import blocky_gt, build_head, features

CASES = {
    # name: (head options, loss options, stage losses, sum |d loss / d
    # stage-0 features|, total above the clip)
    'cl': (dict(), dict(), [0.41489532589912415, 0.41450944542884827,
                            0.16377097368240356, 0.0],
           0.2502625584602356, False),
    'infonce': (dict(), dict(mode='infonce'),
                [0.5609279870986938, 0.43907204270362854, 0.0, 0.0],
                1.3938212394714355, True),
    'infonce_no_clip': (dict(), dict(mode='infonce', clip_value=None),
                        [1.553052306175232, 1.2156673669815063, 0.0, 0.0],
                        3.859100103378296, None),
}


@pytest.fixture
def outside_a_training_loop():
    """A fresh current message hub, with no training iteration in it: a
    runner built by an earlier test leaves its iteration there, and the
    head then seeds its draws from it."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance(f'pinned_losses_{next(_HUBS)}')
    assert MessageHub.get_current_instance() is hub
    return hub


_HUBS = itertools.count()


@pytest.mark.parametrize('name', sorted(CASES))
def test_losses_and_gradients_are_pinned(name, outside_a_training_loop):
    head_options, loss_options, expected, grad_sum, over = CASES[name]
    torch.manual_seed(0)
    head = build_head(loss_decode=dict(type='PatchContrastLoss',
                                       **loss_options), **head_options)
    feats = features(2, 64)
    losses = head.loss(feats, make_samples(blocky_gt(2, 64)), None)
    got = [losses[f'loss_ct_s{i}'].item() for i in range(4)]
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-7)
    sum(losses.values()).backward()
    assert feats[0].grad.abs().sum().item() == pytest.approx(grad_sum,
                                                             rel=1e-4)
    last = head.loss_decode.last_over_clip
    assert (None if last is None else bool(last)) is over
