# UNetFormer + Contrastive Transformer, the paper's CL loss (Table 1): the
# baseline + the CT fragment, nothing else.
_base_ = ['./unetformer_potsdam.py', '../_base_/contrastive_transformer.py']
# Reproduction: the authors' hard clamp of the contrastive loss at 1.0 (zero
# gradient while it is above the clip); the fragment's default 'scale'
# keeps a gradient. See docs/potsdam.md.
ct_head = dict(loss_decode=dict(clip_mode='clamp'))
