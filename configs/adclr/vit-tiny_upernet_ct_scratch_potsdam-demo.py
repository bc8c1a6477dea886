# The same tiny ViT + UPerNet + CT as vit-tiny_upernet_ct_adclr-pre_potsdam-demo.py,
# from random initialisation: the comparison for the ADCLR handoff.
_base_ = ['./vit-tiny_upernet_ct_adclr-pre_potsdam-demo.py']
model = dict(pretrained=None)
custom_hooks = [dict(type='ct_mmseg.ContrastiveTransformerHook'),
                dict(type='ct_mmseg.CTCheckpointHook')]
