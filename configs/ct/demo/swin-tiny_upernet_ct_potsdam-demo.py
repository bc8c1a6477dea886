# The demo with Contrastive Transformer: the demo baseline + the CT fragment.
_base_ = [
    './swin-tiny_upernet_potsdam-demo.py',
    '../../_base_/contrastive_transformer.py',
]
