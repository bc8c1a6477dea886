# The study's CT-InfoNCE arm: the CT-CL arm with the InfoNCE loss.
_base_ = ['./dcswin_ct_dubai.py']
ct_head = dict(loss_decode=dict(mode='infonce'))
