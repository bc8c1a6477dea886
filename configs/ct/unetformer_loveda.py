# UNetFormer baseline on LoveDA: the Potsdam config (Swin-T + UNetFormer
# decoder and auxiliary head, the paper's protocol) with MMSeg's LoveDA data
# and 7 classes in place of Potsdam's. CT variant: unetformer_ct_loveda.py.
_base_ = ['./unetformer_potsdam.py', '../_base_/datasets/loveda.py']
dataset_type = _base_.loveda_dataset_type
data_root = _base_.loveda_data_root
num_classes = _base_.loveda_num_classes  # 7
train_dataloader = dict(dataset=_base_.loveda_train_dataset)
val_dataloader = dict(dataset=_base_.loveda_test_dataset)
test_dataloader = val_dataloader
val_evaluator = _base_.loveda_evaluator
test_evaluator = val_evaluator
# The protocol's 50 epochs (and validation every 10), counted over LoveDA's
# train images: ceil(2522 / 32) = 79 iterations per epoch -> 3950.
iters_per_epoch = -(-_base_.loveda_num_train_images //
                    _base_.total_batch_size)
max_iters = _base_.num_epochs * iters_per_epoch
val_interval = 10 * iters_per_epoch
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
default_hooks = dict(checkpoint=dict(interval=val_interval))
model = dict(decode_head=dict(num_classes=num_classes),
             auxiliary_head=dict(num_classes=num_classes))
