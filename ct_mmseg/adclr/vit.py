"""mmpretrain's VisionTransformer that also reads ADCLR's query crops.

ADCLR feeds each query crop through the *existing* patch embedding and
appends the resulting tokens to the image tokens ([CLS] and the view's
patches). Every block then runs with a one-way attention mask:

* image tokens ([CLS] included) attend to image tokens only, so their
  outputs are exactly those of a forward pass without queries;
* the tokens of query i attend to the image tokens and to query i's own
  tokens, never to another query's.

No parameter is added: :class:`ADCLRViT` has the parameter names of
mmpretrain's ``VisionTransformer`` (a checkpoint loads into either), and its
``forward(x)`` is the parent's. Only :meth:`ADCLRViT.forward_with_queries`
is new; it reuses each layer's own weights through :func:`masked_layer`.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.utils import MultiheadAttention, resize_pos_embed

from .registry import MODELS


def query_attention_mask(num_image_tokens: int, num_queries: int,
                         tokens_per_query: int,
                         device=None) -> torch.Tensor:
    """The one-way mask over ``[image tokens | query tokens]``.

    Returns a bool (L, L) matrix, True where row token may attend to column
    token, with L = num_image_tokens + num_queries * tokens_per_query and the
    query tokens grouped per query (query 0's tokens first).
    """
    total = num_image_tokens + num_queries * tokens_per_query
    allowed = torch.zeros(total, total, dtype=torch.bool, device=device)
    allowed[:, :num_image_tokens] = True  # everyone reads the image
    query_id = torch.arange(num_queries, device=device).repeat_interleave(
        tokens_per_query)
    # a query token reads its own query's tokens, never another query's
    allowed[num_image_tokens:, num_image_tokens:] = \
        query_id[:, None] == query_id[None, :]
    return allowed


def masked_attention(attn: MultiheadAttention, x: torch.Tensor,
                     allowed: torch.Tensor) -> torch.Tensor:
    """``MultiheadAttention.forward`` of mmpretrain 1.2.0 with a mask.

    The same computation as the module's own forward (which takes no mask),
    with ``allowed`` (bool, True = may attend) passed to
    ``F.scaled_dot_product_attention``.
    """
    if attn.scaled_dot_product_attention is not F.scaled_dot_product_attention:
        # mmpretrain switches to its python fallback when qk_scale is set
        raise NotImplementedError(
            'ADCLRViT supports the default attention scale only: leave '
            'model.backbone.layer_cfgs qk_scale unset')
    if attn.v_shortcut:
        raise NotImplementedError('ADCLRViT does not support v_shortcut')
    batch, length, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, length, 3, attn.num_heads,
                              attn.head_dims).permute(2, 0, 3, 1, 4)
    query, key, value = qkv.unbind(0)
    dropout = attn.attn_drop if attn.training else 0.
    x = F.scaled_dot_product_attention(
        query, key, value, attn_mask=allowed, dropout_p=dropout)
    x = x.transpose(1, 2).reshape(batch, length, attn.embed_dims)
    x = attn.proj(x)
    return attn.out_drop(attn.gamma1(attn.proj_drop(x)))


def masked_layer(layer: TransformerEncoderLayer, x: torch.Tensor,
                 allowed: torch.Tensor) -> torch.Tensor:
    """``TransformerEncoderLayer.forward`` with a masked attention."""
    x = x + masked_attention(layer.attn, layer.ln1(x), allowed)
    return layer.ffn(layer.ln2(x), identity=x)


@MODELS.register_module()
class ADCLRViT(VisionTransformer):
    """mmpretrain's ``VisionTransformer`` plus :meth:`forward_with_queries`.

    Takes the arguments of mmpretrain's ``VisionTransformer``; its
    parameters, state-dict keys and ``forward(x)`` are the parent's. It needs
    the [CLS] token (``with_cls_token=True``), which DINO's global loss reads.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.cls_token is None:
            raise ValueError('ADCLRViT needs the [CLS] token: set '
                             'model.backbone.with_cls_token=True')
        for layer in self.layers:
            masked_attention_supported(layer)

    @property
    def patch_size(self) -> int:
        return self.patch_embed.projection.kernel_size[0]

    def forward_with_queries(
        self,
        x: torch.Tensor,
        queries: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Image tokens, and query tokens read under the one-way mask.

        Args:
            x: views, (B, 3, H, W).
            queries: query crops, (B, Q, 3, S, S) with S a multiple of the
                patch size; each crop becomes (S / patch)^2 tokens through
                the patch embedding, with no position embedding (the crops
                have no position in the view). None: no queries.

        Returns:
            ``(image_tokens, query_tokens)``: (B, 1 + N, C) with [CLS] first,
            and (B, Q, T, C) with T tokens per query (None without queries),
            both after the final norm when ``final_norm`` is set.
        """
        batch = x.shape[0]
        tokens, patch_resolution = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(batch, -1, -1), tokens), 1)
        tokens = tokens + resize_pos_embed(
            self.pos_embed, self.patch_resolution, patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens)
        num_image_tokens = tokens.shape[1]
        allowed = None
        if queries is not None:
            num_queries = queries.shape[1]
            query_tokens, _ = self.patch_embed(queries.flatten(0, 1))
            tokens_per_query = query_tokens.shape[1]
            tokens = torch.cat((tokens, query_tokens.reshape(
                batch, num_queries * tokens_per_query, -1)), 1)
            allowed = query_attention_mask(num_image_tokens, num_queries,
                                           tokens_per_query, x.device)
        tokens = self.pre_norm(self.drop_after_pos(tokens))
        for layer in self.layers:
            tokens = layer(tokens) if allowed is None else \
                masked_layer(layer, tokens, allowed)
        if self.final_norm:
            tokens = self.ln1(tokens)
        if queries is None:
            return tokens, None
        return tokens[:, :num_image_tokens], tokens[:, num_image_tokens:] \
            .reshape(batch, num_queries, tokens_per_query, -1)


def masked_attention_supported(layer) -> None:
    """Refuse layer types whose forward :func:`masked_layer` would not
    reproduce (e.g. ``ffn_type='swiglu_fused'`` keeps the same call, but a
    different layer class would not)."""
    if type(layer) is not TransformerEncoderLayer or \
            type(layer.attn) is not MultiheadAttention:
        raise NotImplementedError(
            f'ADCLRViT masks the attention of mmpretrain\'s '
            f'TransformerEncoderLayer/MultiheadAttention only, got '
            f'{type(layer).__name__}/{type(layer.attn).__name__}')
