# Swin-T + UPerNet on Potsdam with Contrastive Transformer: the baseline plus
# the CT fragment, nothing else.
_base_ = [
    './swin-tiny_upernet_4xb4-80k_potsdam-512x512.py',
    '../_base_/contrastive_transformer.py',
]
