# DCSwin + Contrastive Transformer with InfoNCE (Table 1): the baseline +
# the CT fragment, nothing else but the loss mode.
_base_ = ['./dcswin_potsdam.py', '../_base_/contrastive_transformer.py']
# Reproduction: the authors' hard clamp of the contrastive loss at 1.0; see
# docs/potsdam.md.
ct_head = dict(loss_decode=dict(mode='infonce', clip_mode='clamp'))
