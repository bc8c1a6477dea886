# The study's CT-CL arm: the baseline + the CT fragment at its defaults (CL,
# hardest-half pairs, clip 1.0 by scaling), with CT's share of the backbone
# gradient logged (grad_stats).
_base_ = ['./dcswin_dubai.py', '../../_base_/contrastive_transformer.py']
ct_head = dict(grad_stats=True)
