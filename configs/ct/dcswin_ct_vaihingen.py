# DCSwin + Contrastive Transformer, the paper's CL loss, on ISPRS Vaihingen:
# the baseline + the CT fragment, with the CT options of dcswin_ct_potsdam.py
# (the authors' code: hard clamp at 1.0, a random half of the CL pairs; see
# docs/potsdam.md).
_base_ = ['./dcswin_vaihingen.py', '../_base_/contrastive_transformer.py']
ct_head = dict(loss_decode=dict(clip_mode='clamp', pair_selection='random'))
