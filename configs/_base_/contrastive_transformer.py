# Contrastive Transformer (CT) for any MMSeg model: inherit this file next to
# (or on top of) a stock MMSeg config, e.g.
#
#   _base_ = [
#       'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
#       '../_base_/contrastive_transformer.py',
#   ]
#
# and the model trains with CT. This file defines no `model` and no
# `custom_imports` (mmengine forbids a key in two sibling bases, and stock
# PoolFormer configs set `custom_imports`). Instead:
# - `runner_type` names ct_mmseg's runner with a scoped name: MMEngine imports
#   ct_mmseg.registry by itself to resolve it. MMSeg's tools/train.py and
#   `mim train` honour `runner_type`; the runner adds `ct_head` to
#   `model.auxiliary_head`, filling in what is left None from the model:
#   in_channels and strides (measured on the backbone), num_classes and
#   ignore_index (from decode_head).
# - MMSeg's tools/test.py ignores `runner_type` and builds the plain model,
#   which is exactly the inference model (CT has no test-time part). The hook
#   below is resolved the same scoped way, so ct_mmseg is imported there too
#   (its checkpoint loader makes MMEngine checkpoints load on torch >= 2.6).
# Override any option in your own config, e.g.
#   ct_head = dict(loss_decode=dict(mode='infonce'))
runner_type = 'ct_mmseg.CTRunner'
# CT statistics in the log; checkpoints that the plain model (tools/test.py,
# mmseg.apis.init_model, MMSegInferencer) loads as they are
custom_hooks = [dict(type='ct_mmseg.ContrastiveTransformerHook'),
                dict(type='ct_mmseg.CTCheckpointHook')]
ct_head = dict(
    type='ContrastiveTransformerHead',
    in_channels=None,  # None: measured on the backbone
    strides=None,  # None: measured on the backbone (4, 8, 16, 32 for Swin)
    in_index=None,  # None: every backbone output (all four stages)
    num_classes=None,  # None: model.decode_head.num_classes
    ignore_index=None,  # None: model.decode_head.ignore_index (255)
    proj_channels=128,  # authors: Linear(C, 128) - GELU - Linear(128, 128)
    proj_num_layers=2,
    stage_weights=None,  # None: every stage weighs 1 (authors)
    num_samples=2000,  # bound on positives and on negatives per class/stage
    ignore_only_negatives=False,
    # CT draws from its own generator, never the global one, so that adding
    # CT changes no other random number; the draws depend only on (seed,
    # iteration, rank), so resumed runs repeat them exactly.
    # None: the run's seed (MMEngine's `randomness.seed`)
    seed=None,
    grad_stats=False,  # True: log CT's share of the backbone's gradient
    checkpoint_projection=True,  # recompute hidden activations in backward
    loss_decode=dict(
        type='PatchContrastLoss',
        mode='cl',  # 'cl' (the paper's CL) or 'infonce'
        temperature=0.1,  # InfoNCE only
        label_smoothing=0.1,  # CL only
        cl_form='soft_ce',  # authors' form; 'bce' = BCE on (cos + 1) / 2
        hard_fraction=0.5,  # keep 50 % of the pairs
        # CL: 'hardest' (the paper's text) or 'random' (the authors' code as
        # shipped: a sort over a size-1 dimension keeps a random half)
        pair_selection='hardest',
        min_positives=None,  # None: 5 for CL, 10 for InfoNCE (authors)
        min_negatives=None,
        min_positives_for_pairs=10,
        clip_value=1.0,  # the paper clips the contrastive loss at 1.0
        clip_mode='scale',  # 'scale' keeps a gradient; 'clamp' = authors
        loss_weight=1.0,
        warmup_iters=0,  # > 0: ramp the weight from 0 over these iterations
        loss_name='loss_ct'))
