"""Tests of the DCSwin and UNetFormer decode heads (fast, CPU only)."""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import ct_mmseg  # noqa: F401  (registers the heads)
from ct_mmseg.models.decode_heads import (DCSwinHead, GlobalLocalAttention,
                                          SharedChannelAttention,
                                          SharedSpatialAttention,
                                          UNetFormerAuxHead, UNetFormerHead)
from ct_mmseg.models.decode_heads.unetformer_head import pad_right_bottom
from e2e_utils import REPO

NUM_CLASSES = 6
STRIDES = (4, 8, 16, 32)


@pytest.fixture(autouse=True, scope='module')
def _one_thread():
    # The tensors are tiny: with 2 intra-op threads on a busy 2-core machine
    # OpenMP spin-waiting made this file ~25x slower (90 s vs 3.5 s).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _poolformer_widths(arch):
    from mmpretrain.models.backbones.poolformer import PoolFormer
    return tuple(PoolFormer.arch_settings[arch]['embed_dims'])


def _swin_widths(embed_dims):
    # mmseg's SwinTransformer doubles the width at every stage.
    return tuple(embed_dims * 2**i for i in range(4))


BACKBONE_WIDTHS = {
    'swin-t': _swin_widths(96),
    'swin-s': _swin_widths(96),
    'swin-b': _swin_widths(128),
    **{f'poolformer-{a}': _poolformer_widths(a)
       for a in ('s12', 's24', 's36', 'm36', 'm48')},
}


def _feats(widths, h, w, batch=1):
    """Backbone-like maps at strides 4..32 (ceil-divided, as Swin pads)."""
    return [
        torch.randn(batch, c, math.ceil(h / s), math.ceil(w / s))
        for c, s in zip(widths, STRIDES)
    ]


def _samples(h, w, batch=2, num_classes=NUM_CLASSES):
    samples = []
    for _ in range(batch):
        label = torch.randint(0, num_classes, (1, h, w))
        label[:, :2] = 255  # some ignored pixels
        s = SegDataSample(gt_sem_seg=PixelData(data=label))
        s.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                            pad_shape=(h, w)))
        samples.append(s)
    return samples


def _build(kind, widths, **kwargs):
    cfg = dict(type=kind, in_channels=list(widths), num_classes=NUM_CLASSES)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_poolformer_widths_read_from_mmpretrain():
    assert BACKBONE_WIDTHS['poolformer-s12'] == (64, 128, 320, 512)
    assert BACKBONE_WIDTHS['poolformer-m48'] == (96, 192, 384, 768)


@pytest.mark.parametrize('kind', ['DCSwinHead', 'UNetFormerHead'])
@pytest.mark.parametrize('name', sorted(BACKBONE_WIDTHS))
def test_output_shapes(kind, name):
    torch.manual_seed(0)
    widths = BACKBONE_WIDTHS[name]
    head = _build(kind, widths).eval()
    # non-square; and a size that is neither a multiple of 32 nor of the
    # window size at any stage (feature sizes ceil-divided).
    for h, w in ((128, 96), (100, 76)):
        with torch.no_grad():
            out = head(_feats(widths, h, w))
        assert out.shape == (1, NUM_CLASSES, math.ceil(h / 4),
                             math.ceil(w / 4))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize('kind', ['DCSwinHead', 'UNetFormerHead'])
def test_floor_divided_stages_and_bf16(kind):
    """Backbones that floor-divide (100 -> 25, 12, 6, 3) and CPU autocast."""
    widths = BACKBONE_WIDTHS['poolformer-s12']
    head = _build(kind, widths).eval()
    feats = [torch.randn(2, c, 100 // s, 76 // s)
             for c, s in zip(widths, STRIDES)]
    with torch.no_grad():
        assert head(feats).shape == (2, NUM_CLASSES, 25, 19)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = head(feats)
    assert out.shape == (2, NUM_CLASSES, 25, 19)
    assert torch.isfinite(out).all()


def test_aux_head_shape_and_three_stage_form():
    widths = BACKBONE_WIDTHS['swin-t']
    feats = _feats(widths, 100, 76)
    aux4 = _build('UNetFormerAuxHead', widths).eval()
    aux3 = _build('UNetFormerAuxHead', widths[1:], in_index=(1, 2, 3)).eval()
    aux3.load_state_dict(aux4.state_dict())  # same parameters either way
    with torch.no_grad():
        out4, out3 = aux4(feats), aux3(feats)
    assert out4.shape == (1, NUM_CLASSES, 13, 10)  # stride 8
    torch.testing.assert_close(out4, out3)


def _check_loss_and_grads(head, widths, h=64, w=96, gated=()):
    torch.manual_seed(0)
    head.train()
    feats = _feats(widths, h, w, batch=2)
    losses = head.loss(feats, _samples(h, w), train_cfg=None)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in head.named_parameters():
        assert p.grad is not None, f'{name} got no gradient'
        assert torch.isfinite(p.grad).all(), name
        if not any(g in name for g in gated):
            assert p.grad.abs().sum() > 0, f'{name} got a zero gradient'
    return losses


def test_dcswin_loss_and_gradients():
    widths = BACKBONE_WIDTHS['poolformer-s12']
    head = _build('DCSwinHead', widths)
    # gamma = 0 at init: the attention projections get zero (not None)
    # gradients until gamma moves; gamma itself gets a gradient.
    losses = _check_loss_and_grads(
        head, widths, gated=('pa.query_conv', 'pa.key_conv', 'pa.value_conv'))
    assert set(losses) == {'loss_ce', 'acc_seg'}
    assert head.pa.gamma.grad.abs() > 0 and head.ca.gamma.grad.abs() > 0
    # with the gates open every parameter gets a non-zero gradient
    head.zero_grad()
    with torch.no_grad():
        head.pa.gamma.fill_(0.5)
        head.ca.gamma.fill_(0.5)
    _check_loss_and_grads(head, widths)


def test_unetformer_loss_and_gradients():
    widths = BACKBONE_WIDTHS['swin-t']
    _check_loss_and_grads(_build('UNetFormerHead', widths, channels=32),
                          widths)
    # FT-UNetFormer variant: 3x3 ConvBN skip projections, 16 heads. Seeded
    # init: its channel attention squeezes to 4 ReLU6 units, and the RNG
    # state the first check leaves behind gave all 4 a dead start on torch
    # 2.1 (p1.ca.1.weight: zero gradient), not on 2.14
    torch.manual_seed(0)
    _check_loss_and_grads(
        _build('UNetFormerHead', widths, channels=64, num_heads=16,
               pre_conv_kernel=3, dropout_ratio=0.2), widths)
    aux = _build('UNetFormerAuxHead', widths, channels=32,
                 loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4))
    _check_loss_and_grads(aux, widths)


def test_shared_attentions_start_as_identity():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 5, 3)
    pa, ca = SharedSpatialAttention(16), SharedChannelAttention()
    assert pa.gamma.item() == 0 and ca.gamma.item() == 0
    assert torch.equal(pa(x), x)
    assert torch.equal(ca(x), x)
    with torch.no_grad():
        pa.gamma.fill_(1.)
        ca.gamma.fill_(1.)
    assert not torch.allclose(pa(x), x)
    assert not torch.allclose(ca(x), x)


def _unit(v):
    return v / v.norm()


def test_spatial_attention_matches_naive_formula():
    """Explicit attention matrix A[n, m] = 1 + q_n.k_m, loop by loop."""
    torch.manual_seed(0)
    B, C, H, W = 1, 16, 2, 3  # non-square on purpose
    pa = SharedSpatialAttention(C).double()
    with torch.no_grad():
        pa.gamma.fill_(0.7)
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    q = pa.query_conv(x)[0].detach()  # (C', H, W)
    k = pa.key_conv(x)[0].detach()
    v = pa.value_conv(x)[0].detach()  # (C, H, W)
    pos = [(i, j) for i in range(H) for j in range(W)]  # row-major n
    N, eps = len(pos), pa.eps
    expected = torch.empty(C, H, W, dtype=torch.float64)
    for (i, j) in pos:
        qn = _unit(q[:, i, j])
        num = torch.zeros(C, dtype=torch.float64)
        den = 0.
        for (a, b) in pos:
            km = _unit(k[:, a, b])
            weight = 1 + qn @ km
            num += weight * v[:, a, b]
            den += weight
        den += eps * qn.sum()  # the eps added to sum_m k_m
        assert abs(den - (N + qn @ (sum(_unit(k[:, a, b]) for a, b in pos)
                                    + eps))) < 1e-12
        expected[:, i, j] = num / den
    out = pa(x)[0].detach()
    torch.testing.assert_close(out, x[0] + 0.7 * expected)


def test_channel_attention_matches_naive_formula():
    """weight[c, n] = (sum_c' V[c', n] + (V K^T Q)[c, n])
    / (N + K[c] . (sum_c' Q[c'] + eps)), Q = K = L2-normalised x."""
    torch.manual_seed(0)
    B, C, H, W = 1, 3, 2, 3
    ca = SharedChannelAttention().double()
    with torch.no_grad():
        ca.gamma.fill_(0.3)
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    V = x[0].reshape(C, H * W)  # row-major positions
    N = H * W
    Qh = torch.stack([_unit(V[:, n]) for n in range(N)], dim=1)  # (C, N)
    expected = torch.empty(C, N, dtype=torch.float64)
    for c in range(C):
        den = N + sum(Qh[c, n] * (Qh[:, n].sum() + ca.eps) for n in range(N))
        for n in range(N):
            vkq = sum(V[c, m] * Qh[d, m] * Qh[d, n] for d in range(C)
                      for m in range(N))
            expected[c, n] = (V[:, n].sum() + vkq) / den
    out = ca(x)[0].detach()
    torch.testing.assert_close(out, x[0] + 0.3 * expected.reshape(C, H, W))


def test_window_attention_matches_per_window_reference():
    """One window of GLA's global branch recomputed token by token."""
    torch.manual_seed(0)
    D, heads, ws = 8, 2, 4
    gla = GlobalLocalAttention(D, num_heads=heads, window_size=ws).double()
    x = torch.randn(1, D, 2 * ws, 3 * ws, dtype=torch.float64)
    with torch.no_grad():
        out = gla._window_attention(x)
        qkv = gla.qkv(x)[0]  # (3D, H, W)
    r0, c0 = ws, 2 * ws  # window (1, 2)
    tokens = [(i, j) for i in range(ws) for j in range(ws)]
    hd = D // heads
    table = gla.relative_position_bias_table.detach()
    for h in range(heads):
        def feat(part, i, j):
            ch = part * D + h * hd
            return qkv[ch:ch + hd, r0 + i, c0 + j]
        for (i, j) in tokens:
            logits = torch.stack([
                feat(0, i, j) @ feat(1, a, b) * hd**-0.5 +
                table[(i - a + ws - 1) * (2 * ws - 1) + (j - b + ws - 1), h]
                for (a, b) in tokens
            ])
            p = logits.softmax(0)
            ref = sum(p[t] * feat(2, a, b) for t, (a, b) in enumerate(tokens))
            torch.testing.assert_close(
                out[0, h * hd:(h + 1) * hd, r0 + i, c0 + j], ref)


def test_reflect_pad_helper():
    x = torch.randn(1, 2, 5, 3)
    # small pads: exactly F.pad reflect (the published padding)
    torch.testing.assert_close(
        pad_right_bottom(x, 3, 2), F.pad(x, (0, 2, 0, 3), mode='reflect'))
    # pads larger than the map (F.pad would raise) and size-1 maps
    assert pad_right_bottom(x, 11, 13).shape == (1, 2, 16, 16)
    one = torch.randn(1, 2, 1, 1)
    assert pad_right_bottom(one, 7, 7).shape == (1, 2, 8, 8)


@pytest.mark.parametrize('size', [(8, 16), (5, 3), (1, 1), (2, 2), (13, 10)])
def test_global_local_attention_any_size(size):
    gla = GlobalLocalAttention(16, num_heads=4, window_size=8).eval()
    x = torch.randn(1, 16, *size)
    with torch.no_grad():
        assert gla(x).shape == x.shape


def test_build_from_config():
    widths = [96, 192, 384, 768]
    head = MODELS.build(
        dict(type='DCSwinHead', in_channels=widths, num_classes=6))
    assert isinstance(head, DCSwinHead)
    assert head.channels == 96 and head.in_index == [0, 1, 2, 3]
    assert head.dropout.p == 0.05 and head.align_corners
    assert head.pa.query_conv.out_channels == 384 // 8
    head = MODELS.build(
        dict(type='UNetFormerHead', in_channels=widths, channels=256,
             num_heads=16, pre_conv_kernel=3, num_classes=6))
    assert isinstance(head, UNetFormerHead) and head.channels == 256
    aux = MODELS.build(
        dict(type='UNetFormerAuxHead', in_channels=widths, num_classes=6))
    assert isinstance(aux, UNetFormerAuxHead)
    with pytest.raises(ValueError):
        MODELS.build(dict(type='DCSwinHead', in_channels=widths[:3],
                          num_classes=6, in_index=(0, 1, 2)))


POTSDAM_CT = osp.join(REPO, 'configs', '_base_', 'datasets', 'potsdam_ct.py')


def _run_segmentor(model_cfg):
    """Train and predict one step of ``model_cfg`` (without its
    data_preprocessor: the Potsdam configs' one, padding to 64 x 64)."""
    # SegDataPreProcessor and the scoped 'mmpretrain.PoolFormer' are looked
    # up from the mmseg scope, as in a runner.
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    torch.manual_seed(0)
    from mmengine.config import Config, ConfigDict
    preprocessor = Config.fromfile(POTSDAM_CT).data_preprocessor
    model_cfg = dict(model_cfg,
                     data_preprocessor=dict(preprocessor, size=(64, 64)))
    model = MODELS.build(ConfigDict(model_cfg))  # as a runner builds it
    model.init_weights()
    h = w = 64
    samples = _samples(h, w)
    data = dict(
        inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8)
                for _ in samples],
        data_samples=samples)
    model.train()
    batch = model.data_preprocessor(data, training=True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(data, training=False)
        preds = model.predict(batch['inputs'], batch['data_samples'])
    for p in preds:
        assert p.pred_sem_seg.data.shape == (1, h, w)
        assert p.seg_logits.data.shape == (NUM_CLASSES, h, w)
    return losses


def test_encoder_decoder_swin_dcswin():
    losses = _run_segmentor(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='SwinTransformer',
                pretrain_img_size=64,
                embed_dims=32,
                depths=(1, 1, 1, 1),
                num_heads=(1, 2, 4, 8),
                window_size=7,
                out_indices=(0, 1, 2, 3)),
            decode_head=dict(
                type='DCSwinHead', in_channels=[32, 64, 128, 256],
                num_classes=NUM_CLASSES),
            train_cfg=dict(),
            test_cfg=dict(mode='whole')))
    assert 'decode.loss_ce' in losses


def test_encoder_decoder_poolformer_unetformer():
    import mmpretrain.models  # noqa: F401  (registers mmpretrain.PoolFormer)
    widths = list(_poolformer_widths('s12'))
    losses = _run_segmentor(
        dict(
            type='EncoderDecoder',
            backbone=dict(
                type='mmpretrain.PoolFormer', arch='s12',
                out_indices=(0, 2, 4, 6)),
            decode_head=dict(
                type='UNetFormerHead', in_channels=widths, channels=64,
                num_classes=NUM_CLASSES),
            auxiliary_head=dict(
                type='UNetFormerAuxHead', in_channels=widths, channels=64,
                num_classes=NUM_CLASSES,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
            train_cfg=dict(),
            test_cfg=dict(mode='whole')))
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
