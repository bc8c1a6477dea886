"""DCSwinHead: the DCSwin decoder (DCFAM) as an MMSeg decode head.

DCSwin (Wang et al., "A Novel Transformer Based Semantic Segmentation Scheme
for Fine-Resolution Remote Sensing Images", IEEE GRSL 2022) puts a densely
connected feature aggregation module (DCFAM) on a four-stage backbone. DCFAM
mixes every stage with its neighbours through strided "down connections" and
dilated separable "lateral" up paths, and refines the mid-level stages with
two *shared* linear-complexity attentions: one over positions (spatial) and
one over channels.

This is an independent implementation written from the published
description. It fixes the original's reshape bug (``view(B, C, W, H)``,
which only gives the right result for square maps) and works for any input
size and any four-stage backbone widths.
"""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

from .stages import check_stages


def resize_to(x: Tensor, size: Sequence[int], mode: str = 'nearest',
              align_corners: Optional[bool] = None) -> Tensor:
    """Resize ``x`` (B, C, h, w) to ``size`` = (H, W); no-op if it fits.

    The published decoders upsample by a fixed x2 and rely on the backbone
    maps being exact halvings. Resizing to the size of the map that is added
    next is the same operation when the sizes are exact halvings (nearest or
    bilinear with ``align_corners=False`` to exactly twice the size equals
    ``scale_factor=2``) and also works when a stage was ceil- or
    floor-divided (e.g. a 100x76 input).
    """
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == 'nearest':
        return F.interpolate(x, size=size, mode='nearest')
    return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)


class SharedSpatialAttention(nn.Module):
    """Linear ("Taylor") self-attention over positions, with a zero-init gate.

    With N = H*W positions, Q, K (C/r channels) and V (C channels) are 1x1
    convolutions of x; Q and K are L2-normalised over channels at each
    position (q_n, k_m). Replacing exp(q.k) by its first-order Taylor
    expansion 1 + q.k gives attention weights ``A[n, m] = 1 + q_n . k_m``
    whose sums factorise, so the output costs O(N C^2) instead of O(N^2 C)::

        out[:, n] = (sum_m v_m + (V K^T) q_n) / (N + q_n . (sum_m k_m + eps))

    and the module returns ``x + gamma * out``. ``gamma`` starts at 0, so
    the module starts as the identity and learns how much attention to mix in.
    The factorised sums are computed in float32, also under AMP (they grow
    with N and could overflow float16); in float32 nothing changes.

    DCSwin uses ONE instance of this module at two places (on stage 3 and on
    the stage-2 map brought down to stride 16), hence "shared".

    Args:
        in_channels (int): channels C of the input (and the output).
        reduction (int): Q/K width is ``max(1, C // reduction)``. Default 8.
        eps (float): added to the summed keys in the normaliser. Default 1e-6.

    Shapes:
        x: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, in_channels: int, reduction: int = 8,
                 eps: float = 1e-6):
        super().__init__()
        qk_channels = max(1, in_channels // reduction)
        # The published Q/K/V projections are 1x1 convs with bias.
        self.query_conv = nn.Conv2d(in_channels, qk_channels, 1)
        self.key_conv = nn.Conv2d(in_channels, qk_channels, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        N = H * W
        q, k, v = self.query_conv(x), self.key_conv(x), self.value_conv(x)
        # The sums run over all N positions (K V^T reaches ~N*|v|), which can
        # overflow float16 under AMP: do this part in float32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            q = F.normalize(q.float().flatten(2), dim=1)  # (B, C', N)
            k = F.normalize(k.float().flatten(2), dim=1)  # (B, C', N)
            v = v.float().flatten(2)  # (B, C, N)
            kv = torch.einsum('bmn,bcn->bmc', k, v)  # (B, C', C) = K V^T
            numer = v.sum(dim=2, keepdim=True) + torch.einsum(
                'bmn,bmc->bcn', q, kv)  # (B, C, N)
            denom = N + torch.einsum('bmn,bm->bn', q,
                                     k.sum(dim=2) + self.eps)  # (B, N)
            out = numer / denom.unsqueeze(1)  # (B, C, N)
        # Back to (H, W) in that order: the original's view(B, C, W, H)
        # transposes the map for non-square inputs.
        return x + self.gamma * out.reshape(B, C, H, W).to(x.dtype)


class SharedChannelAttention(nn.Module):
    """Linear ("Taylor") self-attention over channels, with a zero-init gate.

    No projections: Q = K = V = x flattened to (B, C, N), with Q and K
    L2-normalised over channels at each position (Q^, K^). Then::

        out[c, n] = (sum_c' V[c', n] + (V K^T Q)[c, n])
                    / (N + K^[c, :] . (sum_c' Q^[c', :] + eps))

    and the module returns ``x + gamma * out`` (gamma starts at 0: identity).
    The normaliser adds N = H*W although the attention runs over the C
    channels; this is the published formula and is kept as is.
    DCSwin uses ONE instance at two places (stage 2 and the stage-1 map
    brought down to stride 8), so the module has only ``gamma`` and no
    channel-specific weights. Computed in float32 like the spatial one.

    Args:
        eps (float): added to the summed queries in the normaliser.
            Default 1e-6.

    Shapes:
        x: (B, C, H, W) -> (B, C, H, W), any C.
    """

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        N = H * W
        # float32 for the same reason as in SharedSpatialAttention.
        with torch.autocast(device_type=x.device.type, enabled=False):
            v = x.float().flatten(2)  # (B, C, N)
            qk = F.normalize(v, dim=1)  # (B, C, N): Q^ and K^ are identical
            vk = torch.einsum('bcn,bdn->bcd', v, qk)  # (B, C, C) = V K^T
            numer = v.sum(dim=1, keepdim=True) + torch.bmm(vk,
                                                           qk)  # (B, C, N)
            denom = N + torch.einsum('bcn,bn->bc', qk,
                                     qk.sum(dim=1) + self.eps)  # (B, C)
            out = numer / denom.unsqueeze(2)  # (B, C, N)
        return x + self.gamma * out.reshape(B, C, H, W).to(x.dtype)


class SeparableConvBNAct(nn.Sequential):
    """DCSwin's separable conv: depthwise 3x3 (dilated) -> 1x1 -> norm -> act.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        dilation (int): dilation of the depthwise 3x3 (padding keeps size).
        norm_cfg (dict): norm after the pointwise conv.
        act_cfg (dict): activation after the norm.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, dilation: int,
                 norm_cfg: ConfigType, act_cfg: ConfigType):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=dilation,
                      dilation=dilation, groups=in_channels, bias=False),
            ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg,
                       act_cfg=act_cfg))


class DownConnection(nn.Module):
    """Residual stride-2 block that brings a stage to the next, coarser one.

    ``act(ConvBN3x3_s2(act(ConvBN3x3(x))) + ConvBN3x3_s2(x))``; the shortcut is
    a 3x3 (not 1x1) strided ConvBN, as published.

    Args:
        in_channels (int): channels of the finer stage.
        out_channels (int): channels of the coarser stage.
        norm_cfg (dict): norm config. act_cfg (dict): activation config.

    Shapes:
        (B, in_channels, H, W) -> (B, out_channels, ceil(H/2), ceil(W/2)).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: ConfigType, act_cfg: ConfigType):
        super().__init__()
        self.conv1 = ConvModule(in_channels, out_channels, 3, padding=1,
                                norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvModule(out_channels, out_channels, 3, stride=2,
                                padding=1, norm_cfg=norm_cfg, act_cfg=None)
        self.shortcut = ConvModule(in_channels, out_channels, 3, stride=2,
                                   padding=1, norm_cfg=norm_cfg, act_cfg=None)
        self.act = build_activation_layer(
            dict(act_cfg)) if act_cfg else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class LateralUp(nn.Module):
    """Two-step up path: SepConvBNAct(d1) -> up -> SepConvBNAct(d2) -> up.

    Brings a map two stages up (x4 in resolution) while reducing its width
    through the intermediate stage's width; the ups are nearest-neighbour to
    the sizes of the stages they land on.

    Args:
        channels (Sequence[int]): (C_in, C_mid, C_out).
        dilations (Sequence[int]): dilations of the two separable convs.
        norm_cfg (dict): norm config. act_cfg (dict): activation config.

    Shapes:
        x: (B, C_in, h, w); sizes: [(H_mid, W_mid), (H_out, W_out)]
        -> (B, C_out, H_out, W_out).
    """

    def __init__(self, channels: Sequence[int], dilations: Sequence[int],
                 norm_cfg: ConfigType, act_cfg: ConfigType):
        super().__init__()
        self.conv1 = SeparableConvBNAct(channels[0], channels[1],
                                        dilations[0], norm_cfg, act_cfg)
        self.conv2 = SeparableConvBNAct(channels[1], channels[2],
                                        dilations[1], norm_cfg, act_cfg)

    def forward(self, x: Tensor, sizes: Sequence[Sequence[int]]) -> Tensor:
        x = resize_to(self.conv1(x), sizes[0])
        return resize_to(self.conv2(x), sizes[1])


@MODELS.register_module()
class DCSwinHead(BaseDecodeHead):
    """DCSwin decoder (DCFAM + fusion + segmentation head) for MMSeg.

    Takes the four stages x1..x4 of a backbone at strides 4, 8, 16, 32 with
    widths C1..C4 (Swin-T/S (96, 192, 384, 768), Swin-B (128, 256, 512,
    1024), PoolFormer-S (64, 128, 320, 512), PoolFormer-M (96, 192, 384,
    768), ...) and computes, with ``pa`` the shared spatial attention (width
    C3), ``ca`` the shared channel attention, ``down_ij`` stride-2 residual
    blocks and ``lf`` the dilated separable up paths (rates ``dilations``)::

        out4 = conv4(x4) + down34(pa(down232(x2)))       # (B, C4, /32)
        out3 = pa(x3) + down231(ca(down12(x1)))           # (B, C3, /16)
        out2 = ca(x2) + lf4(out4)                         # (B, C2, /8)
        out1 = lf3(out3) + conv1(x1)                      # (B, C1, /4)
        x = out1 + up(out2)                               # (B, C1, /4)
        logits = conv_seg(ConvBNAct3x3(dropout(x)))       # (B, K, /4)

    Differences from the published model, on purpose:

    * Like every MMSeg head it returns logits at stride 4 (1/4 of the input)
      and does NOT apply the original's final x4 bilinear upsampling:
      :meth:`loss_by_feat` and :meth:`predict_by_feat` resize the logits to
      the label / image size. ``align_corners`` defaults to True here so
      that this resize is the published ``UpsamplingBilinear2d(x4)``
      (align_corners=True) whenever the input is a multiple of 32.
    * The classifier is BaseDecodeHead's ``conv_seg`` (a 1x1 conv *with*
      bias; the original has none) and ``self.dropout`` (Dropout2d with
      ``dropout_ratio``), so MMSeg's init, checkpoint keys and ``out_channels``
      handling apply. The dropout is applied where DCSwin applies it, on the
      fused map BEFORE the 3x3 ConvBNAct, not right before ``conv_seg`` as
      :meth:`cls_seg` would do.
    * Up/down paths resize to the size of the stage they are added to, so
      inputs whose size is not a multiple of 32 (or non-square ones) work.
    * Attention maps are reshaped to (H, W), fixing the original's
      ``view(B, C, W, H)`` that only works for square inputs.

    Args:
        in_channels (Sequence[int]): widths (C1, C2, C3, C4) of the four
            selected backbone outputs, finest first.
        channels (int, optional): width of the 3x3 ConvBNAct before the
            classifier. Default None: C1, as published.
        num_classes (int): number of classes K.
        dilations (Sequence[int]): dilations of the first and second
            separable conv of each lateral up path. Default (6, 12).
        attention_reduction (int): the spatial attention's Q/K width is
            C3 // attention_reduction. Default 8.
        dropout_ratio (float): Dropout2d ratio on the fused map.
            Default 0.05.
        norm_cfg (dict): norm of every ConvBN. Default BN.
        act_cfg (dict): activation (plain ReLU in DCSwin).
        in_index (Sequence[int]): which backbone outputs to use.
            Default (0, 1, 2, 3).
        input_transform (str): must be 'multiple_select' (the default).
        align_corners (bool): align_corners of MMSeg's resize of the logits
            to the label/image size. Default True (see above).
        **kwargs: the other :class:`BaseDecodeHead` arguments (``loss_decode``,
            ``ignore_index``, ``init_cfg``, ...).

    Shapes:
        inputs: 4 tensors (B, C_i, H_i, W_i) with H_i ~ H / 2^(i+1).
        output of :meth:`forward`: (B, K, H_1, W_1), stride 4.

    Example:
        >>> head = dict(type='DCSwinHead', in_channels=[96, 192, 384, 768],
        ...             num_classes=6,
        ...             loss_decode=dict(type='CrossEntropyLoss',
        ...                              loss_weight=1.0))
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: Optional[int] = None,
                 *,
                 num_classes: int,
                 dilations: Sequence[int] = (6, 12),
                 attention_reduction: int = 8,
                 dropout_ratio: float = 0.05,
                 norm_cfg: OptConfigType = dict(type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 input_transform: str = 'multiple_select',
                 align_corners: bool = True,
                 **kwargs):
        check_stages('DCSwinHead', in_channels, input_transform)
        in_channels = list(in_channels)
        if channels is None:
            channels = in_channels[0]
        super().__init__(
            in_channels,
            channels,
            num_classes=num_classes,
            dropout_ratio=dropout_ratio,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            in_index=list(in_index),
            input_transform=input_transform,
            align_corners=align_corners,
            **kwargs)
        c1, c2, c3, c4 = in_channels
        conv_args = dict(norm_cfg=norm_cfg, act_cfg=act_cfg)

        # Plain 1x1 convs (no norm, no bias) that keep the width, as published.
        self.conv1 = nn.Conv2d(c1, c1, 1, bias=False)
        self.conv4 = nn.Conv2d(c4, c4, 1, bias=False)
        # One instance each, used twice in forward (shared attention).
        self.pa = SharedSpatialAttention(c3, attention_reduction)
        self.ca = SharedChannelAttention()
        self.down12 = DownConnection(c1, c2, **conv_args)
        self.down231 = DownConnection(c2, c3, **conv_args)  # x1 path, -> out3
        self.down232 = DownConnection(c2, c3, **conv_args)  # x2 path, -> out4
        self.down34 = DownConnection(c3, c4, **conv_args)
        self.lf4 = LateralUp((c4, c3, c2), dilations, **conv_args)
        self.lf3 = LateralUp((c3, c2, c1), dilations, **conv_args)
        self.up_conv = ConvModule(c2, c1, 3, padding=1, **conv_args)
        self.fuse_conv = ConvModule(c1, self.channels, 3, padding=1,
                                    **conv_args)

    def forward(self, inputs: List[Tensor]) -> Tensor:
        """Args: inputs: backbone outputs. Returns (B, K, H/4, W/4)."""
        x1, x2, x3, x4 = self._transform_inputs(inputs)
        s1, s2, s3, s4 = (x.shape[-2:] for x in (x1, x2, x3, x4))

        # Each strided output is fitted to the stage it meets (a no-op for
        # ceil-divided backbones such as Swin and PoolFormer).
        def down(block: nn.Module, x: Tensor, size) -> Tensor:
            return resize_to(block(x), size, mode='bilinear',
                             align_corners=False)

        out4 = self.conv4(x4) + down(
            self.down34, self.pa(down(self.down232, x2, s3)), s4)
        out3 = self.pa(x3) + down(
            self.down231, self.ca(down(self.down12, x1, s2)), s3)
        out2 = self.ca(x2) + self.lf4(out4, (s3, s2))
        out1 = self.lf3(out3, (s2, s1)) + self.conv1(x1)
        x = out1 + resize_to(self.up_conv(out2), s1)  # (B, C1, H1, W1)

        # Published order: Dropout2d -> ConvBNReLU3x3 -> 1x1 classifier.
        if self.dropout is not None:
            x = self.dropout(x)
        x = self.fuse_conv(x)
        return self.conv_seg(x)


__all__ = [
    'DCSwinHead', 'SharedSpatialAttention', 'SharedChannelAttention',
    'DownConnection', 'LateralUp', 'SeparableConvBNAct', 'resize_to'
]
