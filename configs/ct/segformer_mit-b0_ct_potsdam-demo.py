# CT on a backbone the paper did not use (docs/other_backbones.md): the
# SegFormer MiT-B0 demo baseline (MMSeg's stock config on the Potsdam demo
# data) + the CT fragment, nothing else. MiT-B0 has four stages of strides
# 4/8/16/32 and 32/64/160/256 channels; the fragment measures both.
#
#   python tools/prepare_demo_data.py     # data/potsdam_demo (synthetic)
#   mim train mmsegmentation configs/ct/segformer_mit-b0_ct_potsdam-demo.py
#
# SegFormer has no auxiliary head, so CT is the only one: its losses are
# logged as aux.loss_ct_s0 ... aux.loss_ct_s3.
_base_ = [
    './segformer_mit-b0_potsdam-demo.py',
    '../_base_/contrastive_transformer.py',
]
