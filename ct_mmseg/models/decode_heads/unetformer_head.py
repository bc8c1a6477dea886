"""UNetFormer decoder and its auxiliary head as MMSeg decode heads.

UNetFormer (Wang et al., "UNetFormer: A UNet-like transformer for efficient
semantic segmentation of remote sensing urban scene imagery", ISPRS J. 2022)
decodes a four-stage encoder with global-local transformer blocks (window
self-attention plus a convolutional local branch), weighted-sum skip fusions
(WF) and a feature refinement head (FRH) at stride 4. FT-UNetFormer is the
same decoder on a Swin encoder, with 3x3 ConvBN skip projections.

This is an independent implementation written from the published
description; it works for any input size (not only multiples of the window
size times 32) and any four-stage backbone widths.
"""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

from .dcswin_head import resize_to
from .stages import check_stages


def pad_right_bottom(x: Tensor, pad_h: int, pad_w: int,
                     mode: str = 'reflect') -> Tensor:
    """Pad ``x`` (B, C, H, W) by ``pad_h`` rows at the bottom and ``pad_w``
    columns on the right -> (B, C, H + pad_h, W + pad_w).

    ``F.pad(mode='reflect')`` needs the pad to be smaller than the size it
    pads; small coarse maps (a 2x2 stride-32 map padded to the 8x8 window)
    break that. The reflection is then repeated (each step reflects the
    already padded tensor, i.e. a periodic mirror) and a size-1 dimension,
    which has nothing to mirror, is replicated. For pads smaller than the size
    this is exactly one ``F.pad(..., mode='reflect')``, as published.
    """
    for dim, pad in ((3, pad_w), (2, pad_h)):  # W first, then H, as published
        while pad > 0:
            step = min(pad, x.shape[dim] - 1)
            step_mode = mode
            if step <= 0:  # size 1: reflection undefined, replicate it
                step, step_mode = pad, 'replicate'
            pads = (0, step, 0, 0) if dim == 3 else (0, 0, 0, step)
            x = F.pad(x, pads, mode=step_mode)
            pad -= step
    return x


class SeparableConvBN(nn.Sequential):
    """UNetFormer's separable conv: depthwise kxk -> norm -> pointwise 1x1.

    Unlike DCSwin's, the norm sits between the depthwise and the pointwise
    conv. It is built on the *input* width here (the original builds it on
    the output width, which only works when in == out, its only use).

    Args:
        in_channels (int): input channels. out_channels (int): output ones.
        kernel_size (int): depthwise kernel; padding (k - 1) // 2, so an
            even k (the window-size projection, k = 8) shrinks the map by 1.
        norm_cfg (dict): norm config.

    Shapes:
        (B, in, H, W) -> (B, out, H + 2*((k-1)//2) - k + 1, same for W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 norm_cfg: ConfigType):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, kernel_size,
                      padding=(kernel_size - 1) // 2, groups=in_channels,
                      bias=False),
            build_norm_layer(norm_cfg, in_channels)[1],
            nn.Conv2d(in_channels, out_channels, 1, bias=False))


class GlobalLocalAttention(nn.Module):
    """Global-local attention (GLA) of UNetFormer.

    * local branch: ConvBN1x1(x) + ConvBN3x3(x);
    * global branch: the map is reflect-padded right/bottom to a multiple of
      the window size ws, a 1x1 conv gives q, k, v, multi-head self-attention
      runs inside non-overlapping ws x ws windows with a Swin-style relative
      position bias, and the result is cropped back to H x W;
    * cross-window context: average pools over ws x 1 and 1 x ws strips
      (stride 1) of the attention map, added to the local branch;
    * projection: a ws x ws depthwise-separable ConvBN on the map
      reflect-padded by one row/column (the even kernel then keeps H x W).

    Args:
        dim (int): channels D (divisible by ``num_heads``).
        num_heads (int): attention heads. Default 8.
        window_size (int): window size ws (even). Default 8.
        qkv_bias (bool): bias of the qkv conv. Default False.
        norm_cfg (dict): norm config of the ConvBNs.

    Shapes:
        x: (B, D, H, W) -> (B, D, H, W), any H, W >= 1.
    """

    def __init__(self, dim: int, num_heads: int = 8, window_size: int = 8,
                 qkv_bias: bool = False,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True)):
        super().__init__()
        if dim % num_heads or window_size % 2:
            raise ValueError(f'dim {dim} must be divisible by num_heads '
                             f'{num_heads} and window_size {window_size} '
                             'must be even')
        self.num_heads = num_heads
        self.ws = window_size
        self.scale = (dim // num_heads)**-0.5
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.local1 = ConvModule(dim, dim, 3, padding=1, norm_cfg=norm_cfg,
                                 act_cfg=None)
        self.local2 = ConvModule(dim, dim, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.proj = SeparableConvBN(dim, dim, window_size, norm_cfg)
        # Padding ws/2 - 1 on a map padded by one row (column): the pooled map
        # is H x W again.
        self.attn_x = nn.AvgPool2d((window_size, 1), stride=1,
                                   padding=(window_size // 2 - 1, 0))
        self.attn_y = nn.AvgPool2d((1, window_size), stride=1,
                                   padding=(0, window_size // 2 - 1))

        # Relative position bias, one value per head and (dy, dx) offset.
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)
        coords = torch.stack(
            torch.meshgrid(torch.arange(window_size),
                           torch.arange(window_size),
                           indexing='ij')).flatten(1)  # (2, ws*ws)
        rel = (coords[:, :, None] - coords[:, None, :]) + window_size - 1
        index = rel[0] * (2 * window_size - 1) + rel[1]  # (ws*ws, ws*ws)
        # Derived from window_size: not saved in checkpoints.
        self.register_buffer('relative_position_index', index,
                             persistent=False)

    def _window_attention(self, x: Tensor) -> Tensor:
        """(B, D, Hp, Wp), Hp and Wp multiples of ws -> (B, D, Hp, Wp)."""
        B, D, Hp, Wp = x.shape
        ws, heads = self.ws, self.num_heads
        hh, ww, hd = Hp // ws, Wp // ws, D // heads
        qkv = self.qkv(x).reshape(B, 3, heads, hd, hh, ws, ww, ws)
        # -> (3, B*hh*ww windows, heads, ws*ws tokens, head_dim)
        qkv = qkv.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(
            3, B * hh * ww, heads, ws * ws, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias_table[
            self.relative_position_index.reshape(-1)].reshape(
                ws * ws, ws * ws, heads).permute(2, 0, 1)  # (heads, T, T)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias.unsqueeze(0)
        out = attn.softmax(dim=-1) @ v  # (B*hh*ww, heads, ws*ws, hd)
        out = out.reshape(B, hh, ww, heads, ws, ws, hd).permute(
            0, 3, 6, 1, 4, 2, 5)  # (B, heads, hd, hh, ws, ww, ws)
        return out.reshape(B, D, Hp, Wp)

    def forward(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        local = self.local2(x) + self.local1(x)  # (B, D, H, W)

        # Pad only when needed, as published (so a multiple of ws is
        # untouched, and the padded tokens join the last windows unmasked).
        pad_h, pad_w = (-H) % self.ws, (-W) % self.ws
        attn = self._window_attention(pad_right_bottom(x, pad_h, pad_w))
        attn = attn[:, :, :H, :W]

        out = self.attn_x(pad_right_bottom(attn, 1, 0)) + \
            self.attn_y(pad_right_bottom(attn, 0, 1))  # (B, D, H, W)
        out = out + local
        out = self.proj(pad_right_bottom(out, 1, 1))
        return out[:, :, :H, :W]


class GLABlock(nn.Module):
    """UNetFormer block: ``x + GLA(BN(x))``, then ``x + MLP(BN(x))``.

    The MLP is 1x1 conv D -> mlp_ratio*D (with bias), ReLU6, 1x1 conv back.
    Stochastic depth is 0 in UNetFormer and is not implemented.

    Args:
        dim (int): channels D. num_heads (int): heads. window_size (int): ws.
        mlp_ratio (float): hidden width of the MLP over D. Default 4.
        qkv_bias (bool): bias of the qkv conv. Default False.
        norm_cfg (dict): norm config. act_cfg (dict): MLP activation.

    Shapes:
        x: (B, D, H, W) -> (B, D, H, W).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 4., qkv_bias: bool = False,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU6')):
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, dim)[1]
        self.attn = GlobalLocalAttention(dim, num_heads, window_size,
                                         qkv_bias, norm_cfg)
        self.norm2 = build_norm_layer(norm_cfg, dim)[1]
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1), build_activation_layer(dict(act_cfg)),
            nn.Conv2d(hidden, dim, 1))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class WeightedFusion(nn.Module):
    """WF: weighted sum of the upsampled decoder map and a projected skip.

    ``x = up(x)`` (bilinear, align_corners=False, to the skip's size);
    ``w = relu(weights) / (sum(relu(weights)) + eps)`` with ``weights``
    starting at ones(2); ``x = w0 * pre_conv(res) + w1 * x``, then a 3x3
    ConvBNAct.

    Args:
        in_channels (int): channels C_i of the skip (backbone stage).
        channels (int): decoder channels D.
        pre_conv_kernel (int): 1 -> plain 1x1 conv (UNetFormer), 3 -> 3x3
            ConvBN (FT-UNetFormer on Swin).
        norm_cfg (dict): norm config. act_cfg (dict): activation (ReLU6).
        eps (float): keeps the weight normalisation finite. Default 1e-8.

    Shapes:
        x: (B, D, h, w), res: (B, C_i, H, W) -> (B, D, H, W).
    """

    def __init__(self, in_channels: int, channels: int,
                 pre_conv_kernel: int = 1,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU6'),
                 eps: float = 1e-8):
        super().__init__()
        if pre_conv_kernel == 1:
            self.pre_conv = nn.Conv2d(in_channels, channels, 1, bias=False)
        elif pre_conv_kernel == 3:
            self.pre_conv = ConvModule(in_channels, channels, 3, padding=1,
                                       norm_cfg=norm_cfg, act_cfg=None)
        else:
            raise ValueError(f'pre_conv_kernel must be 1 or 3, got '
                             f'{pre_conv_kernel}')
        self.weights = nn.Parameter(torch.ones(2))
        self.eps = eps
        self.post_conv = ConvModule(channels, channels, 3, padding=1,
                                    norm_cfg=norm_cfg, act_cfg=act_cfg)

    def fuse(self, x: Tensor, res: Tensor) -> Tensor:
        x = resize_to(x, res.shape[-2:], mode='bilinear', align_corners=False)
        w = F.relu(self.weights)
        w = w / (w.sum() + self.eps)
        return self.post_conv(w[0] * self.pre_conv(res) + w[1] * x)

    def forward(self, x: Tensor, res: Tensor) -> Tensor:
        return self.fuse(x, res)


class FeatureRefinementHead(WeightedFusion):
    """FRH: a WF at stride 4 followed by spatial + channel refinement.

    After the fusion: ``pa = sigmoid(dwconv3x3(x)) * x`` (depthwise, with
    bias), ``ca = sigmoid(MLP(GAP(x))) * x`` (1x1 D -> D/16, ReLU6, 1x1 back,
    no bias), ``x = act(SepConvBN3x3(pa + ca) + ConvBN1x1(x))``.

    Args: as :class:`WeightedFusion`.

    Shapes:
        x: (B, D, h, w), res: (B, C_1, H, W) -> (B, D, H, W).
    """

    def __init__(self, in_channels: int, channels: int,
                 pre_conv_kernel: int = 1,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU6'),
                 eps: float = 1e-8):
        super().__init__(in_channels, channels, pre_conv_kernel, norm_cfg,
                         act_cfg, eps)
        self.pa = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
            nn.Sigmoid())
        squeezed = max(1, channels // 16)
        self.ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, squeezed, 1, bias=False),
            build_activation_layer(dict(act_cfg)),
            nn.Conv2d(squeezed, channels, 1, bias=False), nn.Sigmoid())
        self.shortcut = ConvModule(channels, channels, 1, norm_cfg=norm_cfg,
                                   act_cfg=None)
        self.proj = SeparableConvBN(channels, channels, 3, norm_cfg)
        self.act = build_activation_layer(dict(act_cfg))

    def forward(self, x: Tensor, res: Tensor) -> Tensor:
        x = self.fuse(x, res)
        shortcut = self.shortcut(x)
        x = self.pa(x) * x + self.ca(x) * x
        return self.act(self.proj(x) + shortcut)


@MODELS.register_module()
class UNetFormerHead(BaseDecodeHead):
    """UNetFormer decoder (GLA blocks + WF + FRH) for MMSeg.

    With res1..res4 the four stages (strides 4..32, widths C1..C4) and D =
    ``channels``::

        x = b4(ConvBN1x1(res4))              # (B, D, H4, W4)
        x = b3(p3(x, res3))                  # (B, D, H3, W3)
        x = b2(p2(x, res2))                  # (B, D, H2, W2)
        x = p1(x, res1)                      # FRH, (B, D, H1, W1)
        logits = conv_seg(dropout(ConvBNReLU6_3x3(x)))   # (B, K, H1, W1)

    Differences from the published model, on purpose:

    * Returns stride-4 logits; MMSeg's :meth:`loss_by_feat` /
      :meth:`predict_by_feat` do the final bilinear resize to the label /
      image (align_corners=False, as published).
    * The classifier is BaseDecodeHead's :meth:`cls_seg` (Dropout2d with
      ``dropout_ratio``, then ``conv_seg``, a 1x1 conv with bias; the
      original's has none) - the same order as published.
    * No auxiliary branch inside: the training-only aux head is
      :class:`UNetFormerAuxHead`, used as an MMSeg ``auxiliary_head``.
    * Sizes not divisible by the window and tiny coarse maps work (see
      :func:`pad_right_bottom`); upsamplings go to the skip's size.

    Args:
        in_channels (Sequence[int]): widths (C1, C2, C3, C4), finest first.
        channels (int): decoder width D. Default 64 (UNetFormer); GeoSeg's
            FT-UNetFormer on Swin-B uses 256 (with num_heads=16,
            pre_conv_kernel=3, dropout_ratio=0.2).
        num_classes (int): number of classes K.
        num_heads (int): heads of every GLA block. Default 8.
        window_size (int): GLA window size. Default 8.
        mlp_ratio (float): MLP width of the blocks over D. Default 4.
        qkv_bias (bool): bias of the qkv convs. Default False.
        pre_conv_kernel (int): skip projection of WF/FRH: 1 (plain 1x1 conv,
            UNetFormer) or 3 (3x3 ConvBN, FT-UNetFormer). Default 1.
        dropout_ratio (float): Dropout2d before the classifier. Default 0.1.
        norm_cfg (dict): norm config. Default BN.
        act_cfg (dict): activation. Default ReLU6, as published.
        in_index (Sequence[int]): backbone outputs used. Default (0, 1, 2, 3).
        input_transform (str): must be 'multiple_select' (default).
        **kwargs: the other :class:`BaseDecodeHead` arguments.

    Shapes:
        inputs: 4 tensors (B, C_i, H_i, W_i); output (B, K, H_1, W_1).

    Example:
        >>> head = dict(type='UNetFormerHead', in_channels=[64, 128, 320, 512],
        ...             channels=64, num_classes=6)
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 64,
                 *,
                 num_classes: int,
                 num_heads: int = 8,
                 window_size: int = 8,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = False,
                 pre_conv_kernel: int = 1,
                 dropout_ratio: float = 0.1,
                 norm_cfg: OptConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU6'),
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 input_transform: str = 'multiple_select',
                 **kwargs):
        check_stages('UNetFormerHead', in_channels, input_transform)
        super().__init__(
            list(in_channels), channels, num_classes=num_classes,
            dropout_ratio=dropout_ratio, norm_cfg=norm_cfg, act_cfg=act_cfg,
            in_index=list(in_index), input_transform=input_transform,
            **kwargs)
        c1, c2, c3, c4 = in_channels
        D = channels
        block = dict(dim=D, num_heads=num_heads, window_size=window_size,
                     mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                     norm_cfg=norm_cfg, act_cfg=act_cfg)
        fusion = dict(pre_conv_kernel=pre_conv_kernel, norm_cfg=norm_cfg,
                      act_cfg=act_cfg)
        self.pre_conv = ConvModule(c4, D, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.b4 = GLABlock(**block)
        self.p3 = WeightedFusion(c3, D, **fusion)
        self.b3 = GLABlock(**block)
        self.p2 = WeightedFusion(c2, D, **fusion)
        self.b2 = GLABlock(**block)
        self.p1 = FeatureRefinementHead(c1, D, **fusion)
        self.seg_conv = ConvModule(D, D, 3, padding=1, norm_cfg=norm_cfg,
                                   act_cfg=act_cfg)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Args: inputs: backbone outputs. Returns (B, K, H/4, W/4)."""
        res1, res2, res3, res4 = self._transform_inputs(inputs)
        x = self.b4(self.pre_conv(res4))
        x = self.b3(self.p3(x, res3))
        x = self.b2(self.p2(x, res2))
        x = self.p1(x, res1)
        return self.cls_seg(self.seg_conv(x))


@MODELS.register_module()
class UNetFormerAuxHead(BaseDecodeHead):
    """UNetFormer's training-only auxiliary head, as an MMSeg auxiliary head.

    Published: ``ah = up4(b4_out) + up2(b3_out) + b2_out`` (the outputs of the
    decoder's three GLA blocks, summed at stride 8 with bilinear
    align_corners=True upsampling), then ConvBNReLU6 3x3 -> Dropout(0.1) ->
    1x1 classifier, with its CE loss weighted 0.4.

    MMSeg gives an ``auxiliary_head`` the backbone (or neck) outputs, not the
    decode head's intermediate maps, and :class:`UNetFormerHead` is a plain
    decode head. Decision: keep the published fusion but feed it from the
    backbone. Each of the last three selected stages (strides 8, 16, 32,
    widths C2, C3, C4) gets its own 1x1 ConvBN projection to D =
    ``channels`` (the decoder width the published maps have); they are
    upsampled to the stride-8 size (bilinear, align_corners=True) and
    summed, then ConvBNReLU6 3x3 -> ``dropout`` -> ``conv_seg``.
    Consequences: the aux loss still deep-supervises stages 2-4 of the
    backbone at stride 8, as published, but it sends no gradient into
    the main decoder's blocks b2-b4; no segmentor changes are needed and the
    head is dropped at inference (MMSeg never calls auxiliary heads in
    ``predict``), exactly like the published one. The extra parameters are
    three 1x1 projections.

    It accepts the same four stages as the decode head (so a config can
    reuse ``in_channels``/``in_index``); stage 1 is then ignored. It also
    accepts exactly three stages (``in_index=(1, 2, 3)``); either way the
    LAST THREE selected inputs are used.

    Args:
        in_channels (Sequence[int]): widths of the selected backbone outputs
            (4: (C1, C2, C3, C4), or 3: (C2, C3, C4)).
        channels (int): D. Default 64.
        num_classes (int): number of classes K.
        dropout_ratio (float): element-wise ``nn.Dropout`` (not Dropout2d),
            as published. Default 0.1.
        norm_cfg (dict): norm config. Default BN.
        act_cfg (dict): activation. Default ReLU6.
        in_index (Sequence[int]): backbone outputs used.
            Default (0, 1, 2, 3).
        input_transform (str): must be 'multiple_select' (default).
        **kwargs: the other :class:`BaseDecodeHead` arguments.

    Shapes:
        inputs: (B, C_i, H_i, W_i); output (B, K, H_2, W_2), stride 8.

    Example (the authors' 0.4 aux weight):
        >>> auxiliary_head = dict(
        ...     type='UNetFormerAuxHead', in_channels=[64, 128, 320, 512],
        ...     channels=64, num_classes=6,
        ...     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
        ...                      loss_weight=0.4))
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 64,
                 *,
                 num_classes: int,
                 dropout_ratio: float = 0.1,
                 norm_cfg: OptConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU6'),
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 input_transform: str = 'multiple_select',
                 **kwargs):
        check_stages('UNetFormerAuxHead', in_channels, input_transform,
                     num_stages=(3, 4), needs='3 or 4 stages')
        super().__init__(
            list(in_channels), channels, num_classes=num_classes,
            dropout_ratio=dropout_ratio, norm_cfg=norm_cfg, act_cfg=act_cfg,
            in_index=list(in_index), input_transform=input_transform,
            **kwargs)
        # The published aux head uses element-wise dropout.
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 else None
        self.projs = nn.ModuleList(
            ConvModule(c, channels, 1, norm_cfg=norm_cfg, act_cfg=None)
            for c in list(in_channels)[-3:])
        self.conv = ConvModule(channels, channels, 3, padding=1,
                               norm_cfg=norm_cfg, act_cfg=act_cfg)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Args: inputs: backbone outputs. Returns (B, K, H/8, W/8)."""
        feats = self._transform_inputs(inputs)[-3:]
        size = feats[0].shape[-2:]
        x = sum(
            resize_to(proj(f), size, mode='bilinear', align_corners=True)
            for proj, f in zip(self.projs, feats))  # (B, D, H2, W2)
        return self.cls_seg(self.conv(x))


__all__ = [
    'UNetFormerHead', 'UNetFormerAuxHead', 'GlobalLocalAttention', 'GLABlock',
    'WeightedFusion', 'FeatureRefinementHead', 'pad_right_bottom'
]
