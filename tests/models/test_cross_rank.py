"""Cross-rank contrast: two gloo processes contrast like one whole batch.

Each rank holds half of a batch of 4 images; with ``cross_rank=True`` both
ranks must compute the loss one process computes on all 4 images, and the
gradients averaged over the ranks (what DDP applies) must equal that
process's gradients.
"""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

from ct_mmseg.core.image_keys import (class_keys, draw_by_keys, merge_draws)
from ct_mmseg.models import ContrastiveTransformerHead

CHANNELS = (6, 8)
STRIDES = (4, 8)
SIZE = 32


def batch():
    """4 images: GT with 3 classes in blocks, ignore pixels, and features."""
    gen = torch.Generator().manual_seed(7)
    gt = torch.randint(0, 3, (4, SIZE // 8, SIZE // 8), generator=gen)
    gt = gt.repeat_interleave(8, 1).repeat_interleave(8, 2)
    noise = torch.randint(0, 3, (4, SIZE, SIZE), generator=gen)
    gt = torch.where(torch.rand(4, SIZE, SIZE, generator=gen) < 0.1,
                     noise, gt)
    gt[:, :3, :5] = 255
    feats = [torch.randn(4, c, SIZE // s, SIZE // s, generator=gen)
             for c, s in zip(CHANNELS, STRIDES)]
    return gt, feats


def build_head(mode, memory_size):
    torch.manual_seed(0)
    head = ContrastiveTransformerHead(
        in_channels=list(CHANNELS), num_classes=3, strides=list(STRIDES),
        proj_channels=16, num_samples=40, seed=3, cross_rank=True,
        memory_size=memory_size, memory_per_step=8,
        loss_decode=dict(type='PatchContrastLoss', mode=mode,
                         clip_value=None, min_positives=2,
                         min_negatives=2, min_positives_for_pairs=2))
    head.init_weights()
    return head


def run_steps(head, gt, feats, steps=2):
    """Losses of ``steps`` steps and the gradients of the last one."""
    scales = [torch.nn.Parameter(torch.ones(())) for _ in feats]
    samples = [SegDataSample(gt_sem_seg=PixelData(data=g[None]))
               for g in gt]
    losses = []
    for _ in range(steps):
        head.zero_grad()
        for s in scales:
            s.grad = None
        out = head.loss([f * s for f, s in zip(feats, scales)], samples,
                        None)
        total = sum(out.values())
        total.backward()
        losses.append(total.detach())
    grads = [p.grad.clone() for p in head.parameters()] + \
        [s.grad.clone() for s in scales]
    return torch.stack(losses), grads


# (loss mode, memory size): both losses, and the memory fed by the merged
# draws of the first step in the second
CASES = (('cl', 0), ('infonce', 0), ('cl', 16))


def _worker(rank, init_file, result_file):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=2)
    gt, feats = batch()
    part = slice(2 * rank, 2 * rank + 2)
    results = []
    for mode, memory_size in CASES:
        head = build_head(mode, memory_size)
        losses, grads = run_steps(head, gt[part], [f[part] for f in feats])
        for g in grads:  # what DDP applies: the mean over ranks
            dist.all_reduce(g)
            g /= 2
        results.append(dict(losses=losses, grads=grads))
    torch.save(results, f'{result_file}{rank}')
    dist.destroy_process_group()


def test_two_ranks_equal_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / 'init'), str(tmp_path / 'rank')),
             nprocs=2)
    gt, feats = batch()
    for case, (mode, memory_size) in enumerate(CASES):
        losses, grads = run_steps(build_head(mode, memory_size), gt, feats)
        assert (losses > 0).all()
        for rank in range(2):
            got = torch.load(tmp_path / f'rank{rank}')[case]
            torch.testing.assert_close(got['losses'], losses, rtol=1e-5,
                                       atol=1e-6)
            assert len(got['grads']) == len(grads)
            for g, want in zip(got['grads'], grads):
                torch.testing.assert_close(g, want, rtol=1e-4, atol=1e-6)


def test_without_cross_rank_two_ranks_differ_from_the_whole_batch():
    """The equality above is CT's cross-rank option, not a property of any
    split: one process on half the batch computes another loss."""
    gt, feats = batch()
    whole, _ = run_steps(build_head('cl', 0), gt, feats, steps=1)
    half, _ = run_steps(build_head('cl', 0), gt[:2], [f[:2] for f in feats],
                        steps=1)
    assert not torch.allclose(whole, half)


def test_merging_per_rank_draws_equals_the_draw_of_the_whole():
    gen = torch.Generator().manual_seed(1)
    class_ids = torch.tensor([0, 4, 9])
    uniforms = torch.rand(2, 40, generator=gen, dtype=torch.float64)
    eligible = torch.rand(3, 40, generator=gen) < 0.4
    keys = class_keys(uniforms, class_ids)
    whole = draw_by_keys(eligible, keys, 6)
    halves = [draw_by_keys(eligible[:, p], keys[:, p], 6)
              for p in (slice(0, 20), slice(20, 40))]
    merged = merge_draws(torch.cat([h.keys for h in halves], 1), 6)
    tokens = torch.cat([halves[0].candidates.index,
                        halves[1].candidates.index + 20], 1)
    got = tokens.gather(1, merged.index)
    assert torch.equal(merged.count, whole.candidates.count)
    assert torch.equal(got.masked_fill(~merged.valid, -1),
                       whole.candidates.index.masked_fill(
                           ~whole.candidates.valid, -1))


def test_class_keys_by_hand():
    uniforms = torch.tensor([[0.25, 0.5], [0.5, 0.375]], dtype=torch.float64)
    keys = class_keys(uniforms, torch.tensor([0, 2]))
    # frac(u + (c + 1) v): c=0: 0.75, 0.875; c=2: frac(1.75)=0.75,
    # frac(1.625)=0.625
    torch.testing.assert_close(keys, torch.tensor(
        [[0.75, 0.875], [0.75, 0.625]], dtype=torch.float64))


def test_cross_rank_must_be_a_bool():
    with pytest.raises(TypeError, match='cross_rank'):
        ContrastiveTransformerHead(in_channels=[4], num_classes=2,
                                   strides=[4], cross_rank='yes')
