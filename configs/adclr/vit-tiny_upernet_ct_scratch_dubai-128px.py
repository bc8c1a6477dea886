# vit-tiny_upernet_ct_adclr-pre_dubai-128px.py from random initialisation:
# the comparison for the ADCLR checkpoint.
_base_ = ['./vit-tiny_upernet_ct_adclr-pre_dubai-128px.py']
model = dict(pretrained=None)
custom_hooks = [dict(type='ct_mmseg.ContrastiveTransformerHook'),
                dict(type='ct_mmseg.CTCheckpointHook')]
