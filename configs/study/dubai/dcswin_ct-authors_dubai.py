# The study's "authors' exact CT" arm: CL as the authors' code runs it, a
# random half of the pairs (their sort runs over a size-1 dimension) and
# the hard clamp at 1.0 (zero CT gradient while the loss is above it).
_base_ = ['./dcswin_ct_dubai.py']
ct_head = dict(loss_decode=dict(pair_selection='random', clip_mode='clamp'))
