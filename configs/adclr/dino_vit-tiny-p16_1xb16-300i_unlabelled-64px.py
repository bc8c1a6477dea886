# DINO only: the tiny ADCLR config with the queries off (no query crops, no
# query term). The baseline ADCLR's query term is measured against.
_base_ = ['./adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py']

num_queries = 0
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1, _base_.num_local_views],
         transforms=[_base_.global_view_1, _base_.global_view_2,
                     _base_.local_view]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    _delete_=True,
    type='ct_mmseg.DINO',
    num_local_views=_base_.num_local_views,
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.model.backbone,
    neck=_base_.model.neck,
    head=dict(type='ct_mmseg.DINOHead', loss_cls=_base_.model.head.loss_cls),
    teacher_momentum=_base_.model.teacher_momentum,
    teacher_momentum_end=_base_.model.teacher_momentum_end)
