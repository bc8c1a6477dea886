"""The CT paper's published Table 1 (ISPRS Potsdam), as data: ``PAPER`` is
a list of dicts with the keys ``PAPER_COLUMNS`` (mIoU, std and class IoUs
as fractions)."""


# The CT paper's Table 1, transcribed from Jyhne, Andersen & Goodwin,
# "Contrastive Transformer: Contrastive Learning Scheme with Transformer
# Innate Patches", arXiv:2303.14806 (v1, 28 March 2023), section 4.1,
# Table 1 ("Evaluation results on the ISPRS Potsdam dataset for all
# models"): mIoU (5 classes, Clutter excluded; std over 3 runs of unstated
# kind) and the class IoUs averaged over the runs; the last field is the
# table's "Source" column.
# Note: for the DCPoolFormer CL and InfoNCE rows the published mIoU (0.7620,
# 0.7625) is not the mean of the published class columns (0.7590, 0.7574);
# the values are transcribed as printed (tests/study/test_potsdam_study.py).
POTSDAM_CLASSES = ('impervious_surface', 'building', 'low_vegetation',
                   'tree', 'car', 'clutter')
PAPER_COLUMNS = ('model', 'backbone', 'ct_loss', 'miou', 'std',
                 *POTSDAM_CLASSES, 'source')
PAPER_TABLE1 = [
    ('DCSwin', 'Swin', '-', 0.7728, 0.0016,
     0.8284, 0.8852, 0.7309, 0.7292, 0.6906, 0.3182, '[16]'),
    ('DCSwin', 'Swin', 'CL', 0.7740, 0.0019,
     0.8303, 0.8900, 0.7284, 0.7267, 0.6945, 0.3073, 'Ours'),
    ('DCSwin', 'Swin', 'InfoNCE', 0.7730, 0.0013,
     0.8263, 0.8855, 0.7257, 0.7311, 0.6924, 0.3200, 'Ours'),
    ('UnetFormer', 'Swin', '-', 0.7687, 0.0011,
     0.8293, 0.8891, 0.7218, 0.7191, 0.6842, 0.3153, '[17]'),
    ('UnetFormer', 'Swin', 'CL', 0.7674, 0.0017,
     0.8275, 0.8874, 0.7204, 0.7145, 0.6874, 0.3181, 'Ours'),
    ('UnetFormer', 'Swin', 'InfoNCE', 0.7715, 0.0006,
     0.8300, 0.8896, 0.7266, 0.7217, 0.6896, 0.3337, 'Ours'),
    ('DCPoolFormer', 'PoolFormer', '-', 0.7559, 0.0021,
     0.8113, 0.8694, 0.7084, 0.7053, 0.6853, 0.2752, '[16, 20]'),
    ('DCPoolFormer', 'PoolFormer', 'CL', 0.7620, 0.0055,
     0.8155, 0.8732, 0.7068, 0.7108, 0.6887, 0.2897, 'Ours'),
    ('DCPoolFormer', 'PoolFormer', 'InfoNCE', 0.7625, 0.0068,
     0.8126, 0.8735, 0.7076, 0.7080, 0.6855, 0.2701, 'Ours'),
]
PAPER = [dict(zip(PAPER_COLUMNS, row)) for row in PAPER_TABLE1]
PAPER_RUNS = 3
PAPER_EXCLUDED = ['clutter']
