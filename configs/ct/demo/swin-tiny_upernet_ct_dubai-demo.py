# The main job (tools/run_demo.sh): the Dubai demo baseline + the CT
# fragment, nothing else.
_base_ = [
    './swin-tiny_upernet_dubai-demo.py',
    '../../_base_/contrastive_transformer.py',
]
