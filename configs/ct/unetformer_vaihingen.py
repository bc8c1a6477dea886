# UNetFormer baseline on ISPRS Vaihingen: the Potsdam config (Swin-T +
# UNetFormer decoder and auxiliary head, the paper's protocol) with MMSeg's
# Vaihingen data in place of Potsdam's. CT variant: unetformer_ct_vaihingen.py.
_base_ = ['./unetformer_potsdam.py', '../_base_/datasets/vaihingen.py']
dataset_type = _base_.vaihingen_dataset_type
data_root = _base_.vaihingen_data_root
num_classes = _base_.vaihingen_num_classes  # 6, as Potsdam
train_dataloader = dict(dataset=_base_.vaihingen_train_dataset)
val_dataloader = dict(dataset=_base_.vaihingen_test_dataset)
test_dataloader = val_dataloader
val_evaluator = _base_.vaihingen_evaluator
test_evaluator = val_evaluator
# The protocol's 50 epochs (and validation every 10), counted over
# Vaihingen's train crops: ceil(344 / 32) = 11 iterations per epoch -> 550.
iters_per_epoch = -(-_base_.vaihingen_num_train_crops //
                    _base_.total_batch_size)
max_iters = _base_.num_epochs * iters_per_epoch
val_interval = 10 * iters_per_epoch
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
