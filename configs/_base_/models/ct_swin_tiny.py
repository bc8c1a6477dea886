# The Swin of the paper's DCSwin and UNetFormer rows: MMSeg's stock
# SwinTransformer, Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24,
# window 7), as in MMSeg's upernet_swin base. Only variables are defined
# here (no `model`), so this file sits beside the protocol as a sibling base.
#
# Why Swin-T: the network behind the paper's Table 1 is the authors' own
# small Swin (embed 64, depths 2-2-8-2, widths 64-512, trained from random
# init because their Swin-B checkpoint did not load), which is closer in
# width and cost to Swin-T than to GeoSeg's DCSwin default Swin-S; Swin-T
# is also the Swin used everywhere else in this repo and costs about half of
# Swin-S. Swin-S: override depths=[2, 2, 18, 2] (same widths).
swin_backbone = dict(
    type='SwinTransformer',
    pretrain_img_size=224,
    embed_dims=96,
    patch_size=4,
    window_size=7,
    mlp_ratio=4,
    depths=[2, 2, 6, 2],
    num_heads=[3, 6, 12, 24],
    strides=(4, 2, 2, 2),
    out_indices=(0, 1, 2, 3),
    qkv_bias=True,
    qk_scale=None,
    patch_norm=True,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.3,  # MMSeg's Swin-T value, and GeoSeg's DCSwin
    use_abs_pos_embed=False,
    act_cfg=dict(type='GELU'),
    norm_cfg=dict(type='LN', requires_grad=True),
    # Nothing frozen (GeoSeg freezes stage 0 of a pretrained Swin; with
    # random init, as in the authors' runs, that would freeze noise).
    frozen_stages=-1)
# Stage widths, finest first: embed_dims * (1, 2, 4, 8) = 96 ... 768.
swin_channels = [swin_backbone['embed_dims'] * 2**i for i in range(4)]
