"""Hostile inputs (hypothesis) and misconfigurations.

Property tests: random GT masks (all ignore, one class, all classes, classes
present only as specks that no patch of a stage holds purely, sizes not
divisible by the strides, one-pixel images, grids that pad like Swin or floor)
and random features (zero, normal, huge, fp16 near its limit) through the real
head. The expected values come from a brute-force reference written from the
definitions (a Python loop over every token's block), not from the
vectorised code under test.
"""
import contextlib
import os.path as osp
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmengine.config import Config
from mmseg.registry import MODELS

import ct_mmseg.models.ct_head as ct_head_module
from ct_mmseg.config_injection import add_ct_to_config
from conftest import make_samples
from e2e_utils import REPO

IGN = 255
STRIDES = (4, 8, 16, 32)
CHANNELS = (4, 8, 8, 16)
MIN_COUNTS = {'cl': (5, 5), 'infonce': (10, 10)}  # (positives, negatives)
CT_DEMO = osp.join(REPO, 'configs', 'ct', 'demo',
                   'swin-tiny_upernet_ct_potsdam-demo.py')
# num_classes=1 is a hostile case on purpose: MMSeg's binary advice is noise
pytestmark = pytest.mark.filterwarnings('ignore:.*binary:UserWarning')


# --------------------------------------------------------------------------- #
# strategies
# --------------------------------------------------------------------------- #
@st.composite
def gt_masks(draw):
    """(gt (B, H, W), num_classes) of one hostile kind."""
    batch = draw(st.integers(1, 2))
    height = draw(st.integers(1, 70))
    width = draw(st.integers(1, 70))
    num_classes = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(['noise', 'blocks', 'all_ignore', 'one_class',
                                 'all_classes', 'specks']))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shape = (batch, height, width)

    def blocks(labels, size):
        cells = (batch, -(-height // size), -(-width // size))
        pick = torch.randint(0, len(labels), cells, generator=gen)
        out = torch.as_tensor(labels)[pick]
        out = out.repeat_interleave(size, 1).repeat_interleave(size, 2)
        return out[:, :height, :width].contiguous()

    labels = list(range(num_classes)) + [IGN]
    if kind == 'noise':  # per-pixel labels, ignore included
        gt = torch.as_tensor(labels)[torch.randint(0, len(labels), shape,
                                                   generator=gen)]
    elif kind == 'blocks':
        gt = blocks(labels, draw(st.sampled_from([1, 2, 3, 5, 8, 16, 32])))
    elif kind == 'all_ignore':
        gt = torch.full(shape, IGN)
    elif kind == 'one_class':
        gt = torch.full(shape, draw(st.integers(0, num_classes - 1)))
        if draw(st.booleans()):
            gt[:, ::3] = IGN
    elif kind == 'all_classes':
        gt = blocks(list(range(num_classes)), draw(st.sampled_from([4, 16])))
        gt.view(-1)[:num_classes] = torch.arange(num_classes)[:gt.numel()]
    else:  # specks: a class present only as lone pixels
        gt = blocks(list(range(num_classes)), 16)
        speck = torch.rand(shape, generator=gen) < 0.02
        gt[speck] = num_classes - 1
    return gt.long(), num_classes


@st.composite
def head_cases(draw):
    gt, num_classes = draw(gt_masks())
    batch, height, width = gt.shape
    ceil = draw(st.booleans())  # Swin pads (ceil); a backbone may floor
    grids = [(-(-height // s), -(-width // s)) if ceil else
             (max(1, height // s), max(1, width // s)) for s in STRIDES]
    dtype = draw(st.sampled_from([torch.float32, torch.float16]))
    scale = draw(st.sampled_from([0.0, 1.0, 1e4, 6e4] if dtype ==
                                 torch.float16 else [0.0, 1.0, 1e6, 1e30]))
    return dict(
        gt=gt, num_classes=num_classes, grids=grids, dtype=dtype,
        scale=scale, mode=draw(st.sampled_from(['cl', 'infonce'])),
        num_samples=draw(st.sampled_from([2, 3, 7, 50, 2000])),
        ignore_only_negatives=draw(st.booleans()),
        seed=draw(st.integers(0, 1000)))


# --------------------------------------------------------------------------- #
# the reference, from the definitions
# --------------------------------------------------------------------------- #
def block_labels(gt, stride, grid):
    """Set of labels of each token's block, in token order b*h*w + r*w + c.

    The token grid covers ``grid * stride`` pixels from the top left: pixels
    beyond the mask are padding (ignore), mask pixels beyond the grid are not
    covered by any token.
    """
    batch, height, width = gt.shape
    sets = []
    for b in range(batch):
        for row in range(grid[0]):
            for col in range(grid[1]):
                y0, x0 = row * stride, col * stride
                block = gt[b, y0:y0 + stride, x0:x0 + stride]
                labels = set(block.unique().tolist())
                inside = block.shape[0] * block.shape[1]
                if inside < stride * stride:  # partly or wholly padding
                    labels.add(IGN)
                sets.append(labels)
    return sets


def reference_masks(sets, num_classes, ignore_only_negatives):
    positive = torch.tensor([[labels == {k} for labels in sets]
                             for k in range(num_classes)], dtype=torch.bool)
    negative = torch.tensor(
        [[k not in labels and (ignore_only_negatives or labels != {IGN})
          for labels in sets] for k in range(num_classes)], dtype=torch.bool)
    return positive.view(num_classes, -1), negative.view(num_classes, -1)


def build_head(case, **options):
    cfg = dict(type='ContrastiveTransformerHead', **options,
               in_channels=list(CHANNELS),
               strides=list(STRIDES), num_classes=case['num_classes'],
               proj_channels=8, num_samples=case['num_samples'],
               ignore_only_negatives=case['ignore_only_negatives'],
               seed=case['seed'],
               loss_decode=dict(type='PatchContrastLoss', mode=case['mode']))
    torch.manual_seed(case['seed'])
    return MODELS.build(cfg)


def make_features(case):
    gen = torch.Generator().manual_seed(case['seed'])
    feats = []
    for channels, grid in zip(CHANNELS, case['grids']):
        feat = torch.randn(case['gt'].shape[0], channels, *grid, generator=gen)
        feat = (feat * case['scale'])
        if case['dtype'] == torch.float16:
            feat = feat.clamp(-6e4, 6e4)
        feats.append(feat.to(case['dtype']).requires_grad_())
    return feats


# --------------------------------------------------------------------------- #
# properties
# --------------------------------------------------------------------------- #
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=head_cases())
def test_head_on_hostile_inputs(case):
    head = build_head(case)
    feats = make_features(case)
    drawn = []
    original = ct_head_module.sample_candidates

    def recording(eligible, num_samples, generator=None):
        out = original(eligible, num_samples, generator)
        drawn.append((eligible.clone(), out))
        return out

    with mock.patch.object(ct_head_module, 'sample_candidates', recording):
        losses = head.loss(feats, make_samples(case['gt']), None)

    # no crash, finite fp32 losses, one per stage
    assert sorted(losses) == [f'loss_ct_s{i}' for i in range(4)]
    for name, value in losses.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), name
        assert value.item() >= 0, name
    total = sum(losses.values())
    total.backward()
    for feat in feats:
        assert feat.grad is not None and torch.isfinite(feat.grad).all()
    for name, param in head.named_parameters():
        # every parameter gets a (finite) gradient, even from an exact 0:
        # DDP needs no find_unused_parameters
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name

    # the draws: two per stage (positives, then negatives), checked against
    # the brute-force block labels. Rows are the classes present in the GT;
    # negatives are drawn no wider than the stage's largest
    # positive set (or min_negatives), since no loss uses more.
    assert len(drawn) == 2 * len(STRIDES)
    num_classes = case['num_classes']
    min_pos, min_neg = MIN_COUNTS[case['mode']]
    present = sorted({int(v) for v in case['gt'].unique().tolist()
                      if 0 <= v < num_classes})
    any_active = False
    for stage, (stride, grid) in enumerate(zip(STRIDES, case['grids'])):
        sets = block_labels(case['gt'], stride, grid)
        positive, negative = reference_masks(sets, num_classes,
                                             case['ignore_only_negatives'])
        (pos_eligible, pos), (neg_eligible, neg) = drawn[2 * stage:
                                                         2 * stage + 2]
        assert torch.equal(pos_eligible, positive[present]), f'stage {stage}'
        assert torch.equal(neg_eligible, negative[present]), f'stage {stage}'
        most_positives = int(positive.sum(1).max()) if num_classes else 0
        bounds = (min(case['num_samples'], len(sets)),
                  min(case['num_samples'], len(sets),
                      max(most_positives, min_neg)))
        for row, k in enumerate(present):
            for cand, eligible, bound in ((pos, positive[k], bounds[0]),
                                          (neg, negative[k], bounds[1])):
                count = int(cand.count[row])
                # never more than num_samples; all of them when fewer exist
                assert count == min(int(eligible.sum()), bound)
                assert count <= case['num_samples']
                assert cand.valid[row, :count].all()
                assert not cand.valid[row, count:].any()
                chosen = cand.index[row, :count].tolist()
                assert len(set(chosen)) == count  # without replacement
            for n in pos.index[row, :int(pos.count[row])].tolist():
                assert sets[n] == {k}  # no other label, no ignore
            for n in neg.index[row, :int(neg.count[row])].tolist():
                assert k not in sets[n]
                assert case['ignore_only_negatives'] or sets[n] != {IGN}
            any_active |= (int(pos.count[row]) >= min_pos and
                           int(neg.count[row]) >= min_neg)
    # every used pair costs a strictly positive amount (CL terms >= 0.36,
    # InfoNCE -log p > 0): the loss is 0 exactly when no (stage, class) had
    # enough positives and negatives
    assert (total.item() > 0) == any_active


@settings(max_examples=40, deadline=None)
@given(masks=gt_masks(), stride=st.sampled_from([1, 2, 3, 4, 7, 8, 32]),
       ceil=st.booleans(), ignore_only_negatives=st.booleans())
def test_patch_masks_match_the_definition(masks, stride, ceil,
                                          ignore_only_negatives):
    from ct_mmseg.core import patch_masks
    gt, num_classes = masks
    height, width = gt.shape[1:]
    grid = ((-(-height // stride), -(-width // stride)) if ceil else
            (max(1, height // stride), max(1, width // stride)))
    got = patch_masks(gt, stride, grid, num_classes, IGN,
                      ignore_only_negatives)
    positive, negative = reference_masks(block_labels(gt, stride, grid),
                                         num_classes, ignore_only_negatives)
    assert torch.equal(got.positive, positive)
    assert torch.equal(got.negative, negative)
    # a patch is never both, and a positive patch is a negative for every
    # other class
    assert not (got.positive & got.negative).any()
    for k in range(num_classes):
        others = [j for j in range(num_classes) if j != k]
        if others:
            assert got.negative[others][:, got.positive[k]].all()


@pytest.mark.parametrize('options', [
    {}, dict(positive_purity=0.75), dict(memory_size=16),
    dict(cross_rank=True)])
@pytest.mark.parametrize('mode', ['cl', 'infonce'])
def test_loss_path_has_no_data_dependent_host_reads(mode, options):
    """No host-device sync on a GPU: the whole loss, forward and backward,
    runs on the 'meta' device, where every data-dependent host read
    (``.item()``, ``bool(tensor)``, ``nonzero``, boolean indexing,
    ``unique``, ``.tolist()``) raises. Left out: ``check_labels``, which on
    CUDA is an asynchronous device assertion, autocast (no 'meta' type), and
    ``step_shapes_to_host``, the one documented sync per step (the classes
    present and the positive counts decide the shapes), replaced here by all
    classes present and a fixed count.
    """
    case = dict(num_classes=6, num_samples=50, ignore_only_negatives=False,
                seed=0, mode=mode)
    head = build_head(case, **options).to('meta')
    feats = [torch.empty(2, c, 64 // s, 64 // s, device='meta',
                         requires_grad=True)
             for c, s in zip(CHANNELS, STRIDES)]
    gt = torch.empty(2, 64, 64, dtype=torch.long, device='meta')
    with mock.patch.object(ct_head_module, 'check_labels',
                           lambda *a, **k: None), \
            mock.patch.object(torch, 'autocast',
                              lambda *a, **k: contextlib.nullcontext()), \
            mock.patch.object(ct_head_module, 'step_shapes_to_host',
                              lambda present, most, images=None: (
                                  list(range(present.numel())),
                                  [30] * most.numel(), 2)):
        losses = head.loss(feats, make_samples(gt), None)
        sum(losses.values()).backward()
    assert all(v.device.type == 'meta' and v.dim() == 0
               for v in losses.values())
    assert all(f.grad is not None for f in feats)
    assert all(p.grad is not None for p in head.parameters())


# --------------------------------------------------------------------------- #
# misconfiguration: fails when the model is built, naming key and expectation
# --------------------------------------------------------------------------- #
def demo_cfg(**ct_head):
    cfg = Config.fromfile(CT_DEMO)
    cfg.ct_head.update(ct_head)
    return cfg


@pytest.mark.parametrize('override,error,match', [
    # wrong number of stages: the backbone has 4 outputs
    (dict(in_channels=[48, 96, 192]), ValueError,
     r'ct_head\.in_channels=\[48, 96, 192\] does not match the backbone: '
     r'expected \[48, 96, 192, 384\]'),
    (dict(strides=[4, 8, 16, 32, 64]), ValueError,
     r'ct_head\.strides=\[4, 8, 16, 32, 64\] does not match the backbone: '
     r'expected \[4, 8, 16, 32\]'),
    (dict(in_index=[0, 1, 2, 3, 4]), IndexError,
     r'ct_head\.in_index=\[0, 1, 2, 3, 4\]: the backbone has 4 outputs, '
     r'expected indices in \[0, 4\)'),
    # in_channels of another backbone (Swin-T's)
    (dict(in_channels=[96, 192, 384, 768]), ValueError,
     r'ct_head\.in_channels=\[96, 192, 384, 768\] .*expected '
     r'\[48, 96, 192, 384\]'),
    # bad in_index: negative, out of range as a single int, not an int
    (dict(in_index=[-1, 0]), IndexError,
     r'ct_head\.in_index=\[-1, 0\].*expected indices in \[0, 4\)'),
    (dict(in_index=4), IndexError,
     r'ct_head\.in_index=\[4\].*expected indices in \[0, 4\)'),
    (dict(in_index=['1']), IndexError,
     r"ct_head\.in_index=\['1'\].*expected indices in \[0, 4\)"),
], ids=['3-channels', '5-strides', '5-in_index', 'swin-t-channels',
        'negative-in_index', 'int-in_index', 'str-in_index'])
def test_stage_misconfiguration_fails_at_build(override, error, match):
    with pytest.raises(error, match=match):
        add_ct_to_config(demo_cfg(**override))


def test_a_consistent_subset_of_stages_builds():
    # the counterpart of the failures above: the checks accept what is right
    cfg = add_ct_to_config(demo_cfg(in_index=[1, 3], in_channels=[96, 384]))
    head = MODELS.build(cfg.model).auxiliary_head[1]
    assert head.in_channels == [96, 384] and list(head.strides) == [8, 32]


@pytest.mark.parametrize('key,value,match', [
    ('mode', 'triplet', r"ct_head: .*loss_decode\.mode must be one of "
                        r"\('cl', 'infonce'\), got 'triplet'"),
    ('cl_form', 'hinge', r"ct_head: .*loss_decode\.cl_form must be one of "
                         r"\('soft_ce', 'bce'\)"),
    ('clip_mode', 'cut', r"ct_head: .*loss_decode\.clip_mode must be one of "
                         r"\('scale', 'clamp'\)"),
])
def test_unknown_loss_choice_fails_at_config_build(key, value, match):
    cfg = demo_cfg()
    cfg.ct_head.loss_decode[key] = value
    with pytest.raises(ValueError, match=match):
        add_ct_to_config(cfg)
