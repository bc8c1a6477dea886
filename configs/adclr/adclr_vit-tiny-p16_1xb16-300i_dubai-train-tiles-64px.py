# Tiny ADCLR on the unlabelled images of the Dubai aerial set's training
# tiles (the masks are not read). Paths are relative to the repository root.
_base_ = ['./adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py']

dubai_root = '../shared/data/dubai_aerial'
# the training tiles of ct_mmseg.datasets.dubai_aerial.DEFAULT_SPLIT (the
# converter's split); val (2) and test (3, 8) stay unseen
pretrain_tiles = [1, 4, 5, 6, 7]
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='ConcatDataset',
    datasets=[
        dict(type='CustomDataset', data_root=f'{dubai_root}/Tile {tile}/images',
             with_label=False, extensions=('.jpg', ),
             pipeline=_base_.train_pipeline) for tile in pretrain_tiles
    ]))
