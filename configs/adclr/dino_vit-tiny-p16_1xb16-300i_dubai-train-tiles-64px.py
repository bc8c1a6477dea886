# DINO only (queries off) on the Dubai training tiles: the baseline of
# adclr_vit-tiny-p16_1xb16-300i_dubai-train-tiles-64px.py.
_base_ = ['./dino_vit-tiny-p16_1xb16-300i_unlabelled-64px.py']

dubai_root = '../shared/data/dubai_aerial'
pretrain_tiles = [1, 4, 5, 6, 7]  # the converter's train tiles
train_dataloader = dict(dataset=dict(
    _delete_=True,
    type='ConcatDataset',
    datasets=[
        dict(type='CustomDataset', data_root=f'{dubai_root}/Tile {tile}/images',
             with_label=False, extensions=('.jpg', ),
             pipeline=_base_.train_pipeline) for tile in pretrain_tiles
    ]))
