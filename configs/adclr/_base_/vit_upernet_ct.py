# MMSeg's own ViT + UPerNet (no neck, as MMSeg's vit_deit-s16 configs) plus
# the CT fragment, for a backbone pretrained by ADCLR and converted to
# MMSeg's names by tools/adclr_to_mmseg.py; MMSeg's ViT recipe (AdamW, no
# decay on the position embedding, the cls token and the norms). Each config
# adds the dataset, the backbone's size, the checkpoint and the schedule.
_base_ = [
    'mmseg::_base_/models/upernet_vit-b16_ln_mln.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    '../../_base_/contrastive_transformer.py',
]
model = dict(
    backbone=dict(
        mlp_ratio=4, drop_path_rate=0.1,
        # mmpretrain's ViT has both; MMSeg's defaults (False) would leave
        # two pretrained tensors unused
        patch_bias=True, final_norm=True),
    neck=None)
# CheckPretrainedBackboneHook stops the run unless every backbone tensor was
# loaded (MMSeg's ViT itself loads non-strictly and would go on silently)
custom_hooks = [
    dict(type='ct_mmseg.ContrastiveTransformerHook'),
    dict(type='ct_mmseg.CTCheckpointHook'),
    dict(type='ct_mmseg.CheckPretrainedBackboneHook'),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))
