# Stock MMSeg FPN + mmpretrain PoolFormer-S12 on ADE20K, plus CT.
# The stock config already sets custom_imports (mmpretrain.models); the CT
# fragment needs none, so the two combine without conflict. CT contrasts the
# backbone's stage tokens, not the FPN outputs (ct_mmseg.CTEncoderDecoder).
_base_ = [
    'mmseg::poolformer/fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
    '../_base_/contrastive_transformer.py',
]
# The stock config downloads ImageNet weights at start-up and uses
# AmpOptimWrapper (fp16, GPU only). Offline / on CPU:
#   --cfg-options model.backbone.init_cfg=None \
#       optim_wrapper.type=OptimWrapper optim_wrapper.loss_scale=None
