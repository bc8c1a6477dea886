# DCSwin + CT (CL, the authors' clamp) on the demo data: the DCSwin demo
# baseline + the CT fragment, with the clip mode of ../dcswin_ct_potsdam.py.
_base_ = [
    './dcswin_potsdam-demo.py',
    '../../_base_/contrastive_transformer.py',
]
ct_head = dict(loss_decode=dict(clip_mode='clamp'))
