# DCPoolFormer + Contrastive Transformer, the paper's CL loss (Table 1): the
# baseline + the CT fragment, nothing else.
_base_ = ['./dcpoolformer_potsdam.py', '../_base_/contrastive_transformer.py']
# Reproduction of the authors' code: their hard clamp of the contrastive loss
# at 1.0 (zero gradient while it is above the clip; the fragment's default
# 'scale' keeps a gradient), and their CL pair selection as shipped, which
# keeps a random half of the pairs (their sort runs over a size-1 dimension),
# not the hardest half the paper describes. See docs/potsdam.md.
ct_head = dict(loss_decode=dict(clip_mode='clamp', pair_selection='random'))
