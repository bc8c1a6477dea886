#!/usr/bin/env python
"""Print the CT paper's Table 1 from the grid's test results.

Reads ``<work-root>/<config>/seed<s>/test/per_class_iou.json`` (written by
MMSeg's ``tools/test.py`` through ``PerClassIoUMetric``; see
``tools/run_potsdam_grid.py``) and prints one row per config:

    model | backbone | contrastive loss | mIoU (std) | six class IoUs |
    mIoU-6 (MMSeg) | seeds

Conventions (stated in the table's header too):

* **mIoU is the paper's**: the mean IoU over the five classes Surface,
  Building, Vegetation, Tree, Car, **Clutter excluded** (GeoSeg's
  convention, which the paper's numbers follow: e.g. its DCSwin baseline
  0.8284, 0.8852, 0.7309, 0.7292, 0.6906 -> 0.7729 ~ 0.7728). It is
  computed per seed, then averaged over seeds. The extra column ``mIoU-6``
  is MMSeg's IoUMetric mIoU over all six classes.
* **std is the sample standard deviation** over seeds (ddof=1, Bessel's
  correction): the paper does not say which it used; with 3 seeds the
  population std (``--ddof 0``) is sqrt(2/3) ~ 0.82 times smaller. With a
  single seed the sample std is undefined and printed as n/a.
* Class columns: the IoU of the class averaged over seeds (NaN, i.e. a class
  absent from labels and predictions, is skipped, as MMSeg does).

``--paper`` adds the paper's published row under each of ours (and prints
the paper's rows without a run of ours at the end). Output: Markdown on
stdout; ``--md FILE`` and ``--csv FILE`` write files.

A run without ``per_class_iou.json`` falls back to the newest MMEngine test
log ``test/<timestamp>/<timestamp>.json`` (same per-class values, from the
``IoU.<class>`` keys, in percent).
"""
import argparse
import csv
import glob
import io
import json
import math
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

# MMSeg PotsdamDataset class names -> the paper's column names, in order.
CLASSES = OrderedDict([
    ('impervious_surface', 'Surface'),
    ('building', 'Building'),
    ('low_vegetation', 'Vegetation'),
    ('tree', 'Tree'),
    ('car', 'Car'),
    ('clutter', 'Clutter'),
])
EXCLUDED = ('clutter', )  # left out of the paper's mIoU
MIOU_CLASSES = [c for c in CLASSES if c not in EXCLUDED]
RESULTS_NAME = 'per_class_iou.json'
TEST_DIR = 'test'

# The paper's Table 1, transcribed from Jyhne, Andersen & Goodwin,
# "Contrastive Transformer: Contrastive Learning Scheme with Transformer
# Innate Patches", arXiv:2303.14806 (v1, 28 March 2023), section 4.1,
# Table 1 ("Evaluation results on the ISPRS Potsdam dataset for all
# models"): mIoU (5 classes, std over 3 runs) and the class IoUs averaged
# over the runs; the last field is the table's "Source" column.
PAPER_COLUMNS = ('model', 'backbone', 'loss', 'miou', 'std',
                 'impervious_surface', 'building', 'low_vegetation', 'tree',
                 'car', 'clutter', 'source')
# Note: for the DCPoolFormer CL and InfoNCE rows the published mIoU (0.7620,
# 0.7625) is not the mean of the published class columns (0.7590, 0.7574);
# the values are transcribed as printed (tests/test_ct_table.py checks it).
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

# Labels of the grid's configs when a run folder holds no dumped config.
KNOWN_CONFIGS = {
    f'{stem}{variant}_potsdam': (model, backbone, loss)
    for stem, model, backbone in (('dcswin', 'DCSwin', 'Swin'),
                                  ('unetformer', 'UnetFormer', 'Swin'),
                                  ('dcpoolformer', 'DCPoolFormer',
                                   'PoolFormer'))
    for variant, loss in (('', '-'), ('_ct', 'CL'),
                          ('_ct-infonce', 'InfoNCE'))
}
ROW_ORDER = list(KNOWN_CONFIGS)


class TableError(RuntimeError):
    """A results file is missing something the table needs."""


# ----------------------------------------------------------------- reading
def read_results(path: str) -> Dict[str, Optional[float]]:
    """Per-class IoU (fractions; None = NaN) from one run's results file.

    Accepts the ``PerClassIoUMetric`` results file and MMEngine's test log
    JSON (``IoU.<class>`` keys in percent).
    """
    with open(path) as f:
        data = json.load(f)
    if 'iou' in data:
        iou = data['iou']
    elif any(k.startswith('IoU.') for k in data):
        iou = {k[4:]: (None if v is None or not math.isfinite(v) else v / 100)
               for k, v in data.items() if k.startswith('IoU.')}
    else:
        raise TableError(f'{path}: no per-class IoU (keys {sorted(data)})')
    missing = [c for c in CLASSES if c not in iou]
    if missing:
        raise TableError(f'{path}: classes {missing} missing; expected the '
                         f'six Potsdam classes {list(CLASSES)}')
    return {c: (None if iou[c] is None else float(iou[c])) for c in CLASSES}


def find_results(run: str) -> Optional[str]:
    """The results file of a run folder, or the newest test log, or None."""
    path = osp.join(run, TEST_DIR, RESULTS_NAME)
    if osp.isfile(path):
        return path
    logs = sorted(glob.glob(osp.join(run, TEST_DIR, '*', '*.json')))
    logs = [p for p in logs if re.fullmatch(r'\d{8}_\d{6}\.json',
                                            osp.basename(p))]
    return logs[-1] if logs else None


def describe_config(cfg) -> tuple:
    """(model, backbone, contrastive loss) of an MMSeg config, as in Table 1.

    backbone: 'Swin' / 'PoolFormer' from ``model.backbone.type``; model:
    'DCSwin' or 'DC<backbone>' for DCSwinHead (the paper's DCPoolFormer),
    'UnetFormer' (the paper's spelling) for UNetFormerHead; loss: '-'
    without CT, else 'CL' / 'InfoNCE' from ``ct_head.loss_decode.mode``.
    """
    model_cfg = cfg['model']
    backbone = str(model_cfg['backbone']['type']).split('.')[-1]
    for name in ('Swin', 'PoolFormer'):
        if name in backbone:
            backbone = name
    head = model_cfg['decode_head']
    head_type = str(head['type']).split('.')[-1]
    if head_type == 'DCSwinHead':
        model = 'DCSwin' if backbone == 'Swin' else f'DC{backbone}'
    elif head_type == 'UNetFormerHead':
        model = 'UnetFormer'
    else:
        model = head_type[:-len('Head')] if head_type.endswith('Head') \
            else head_type
    ct_head = cfg.get('ct_head')
    if not ct_head or 'CTRunner' not in str(cfg.get('runner_type', '')):
        loss = '-'
    else:
        mode = (ct_head.get('loss_decode') or {}).get('mode', 'cl')
        loss = {'cl': 'CL', 'infonce': 'InfoNCE'}.get(mode, mode)
    return model, backbone, loss


def label_run_group(name: str, runs: Sequence[str]) -> tuple:
    """Labels of a config folder: from a run's dumped config, else by name."""
    for run in runs:
        dumped = osp.join(run, f'{name}.py')
        if osp.isfile(dumped):
            from mmengine.config import Config
            cfg = Config.fromfile(dumped, import_custom_modules=False)
            return describe_config(cfg)
    return KNOWN_CONFIGS.get(name, (name, '?', '?'))


def collect(work_root: str, configs: Optional[Sequence[str]] = None,
            warn=print) -> List[dict]:
    """One entry per config folder with results: labels + per-seed IoUs."""
    if not osp.isdir(work_root):
        raise TableError(f'work root not found: {work_root}')
    names = [n for n in os.listdir(work_root)
             if osp.isdir(osp.join(work_root, n))]
    if configs:  # the caller's order
        wanted = [osp.splitext(osp.basename(c))[0] for c in configs]
        names = [n for n in wanted if n in names]
    else:  # the paper's row order, then the rest by name
        names.sort(key=lambda n: (ROW_ORDER.index(n) if n in ROW_ORDER
                                  else len(ROW_ORDER), n))
    groups = []
    for name in names:
        runs = sorted(glob.glob(osp.join(work_root, name, 'seed*')),
                      key=lambda p: int(re.sub(r'\D', '', osp.basename(p))
                                        or 0))
        seeds, per_seed = [], []
        for run in runs:
            path = find_results(run)
            if path is None:
                warn(f'warning: {run}: no test results yet, left out')
                continue
            seeds.append(osp.basename(run)[len('seed'):])
            per_seed.append(read_results(path))
        if not per_seed:
            continue
        model, backbone, loss = label_run_group(name, runs)
        groups.append(dict(config=name, model=model, backbone=backbone,
                           loss=loss, seeds=seeds, per_seed=per_seed))
    return groups


# ------------------------------------------------------------ statistics
def nanmean(values: Sequence[Optional[float]]) -> Optional[float]:
    """Mean of the values that are not None/NaN; None if there is none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def std(values: Sequence[float], ddof: int = 1) -> Optional[float]:
    """Standard deviation with ``ddof`` (1: sample, 0: population); None if
    fewer than ``ddof + 1`` values."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    if len(kept) <= ddof:
        return None
    mean = sum(kept) / len(kept)
    return math.sqrt(sum((v - mean)**2 for v in kept) / (len(kept) - ddof))


def summarize(group: dict, ddof: int = 1) -> dict:
    """Table row of a config: mean/std over seeds of the paper's 5-class
    mIoU and of MMSeg's 6-class mIoU, and the seed-averaged class IoUs."""
    miou5 = [nanmean([s[c] for c in MIOU_CLASSES]) for s in group['per_seed']]
    miou6 = [nanmean([s[c] for c in CLASSES]) for s in group['per_seed']]
    row = dict(model=group['model'], backbone=group['backbone'],
               loss=group['loss'], config=group['config'], source='ours',
               seeds=list(group['seeds']), num_seeds=len(group['seeds']),
               miou=nanmean(miou5), std=std(miou5, ddof),
               miou6=nanmean(miou6), miou6_std=std(miou6, ddof))
    for c in CLASSES:
        row[c] = nanmean([s[c] for s in group['per_seed']])
    return row


def paper_row(model: str, loss: str) -> Optional[dict]:
    for row in PAPER:
        if row['model'] == model and row['loss'] == loss:
            # The paper's own "Source" column (a citation or "Ours") is kept
            # in PAPER; here the source is the paper itself.
            return dict(row, source='paper', config='',
                        seeds=[], num_seeds=3, miou6=None, miou6_std=None)
    return None


def table_rows(rows: List[dict], with_paper: bool) -> List[dict]:
    """Rows in the paper's order, each paper row (``with_paper``) right after
    ours of the same model and loss; our rows without a paper row last."""
    if not with_paper:
        return rows
    out, placed = [], set()
    for paper in PAPER:
        key = (paper['model'], paper['loss'])
        for index, row in enumerate(rows):
            if (row['model'], row['loss']) == key:
                out.append(row)
                placed.add(index)
        out.append(paper_row(*key))
    return out + [row for i, row in enumerate(rows) if i not in placed]


# --------------------------------------------------------------- output
def fmt(value: Optional[float], digits: int = 4) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def model_label(row: dict) -> str:
    return f'{row["model"]} (Baseline)' if row['loss'] == '-' \
        else row['model']


def header_note(ddof: int) -> str:
    kind = 'sample standard deviation (ddof=1)' if ddof == 1 else \
        f'standard deviation with ddof={ddof}' + \
        (' (population)' if ddof == 0 else '')
    return (
        'ISPRS Potsdam (RGB), the CT paper\'s Table 1 form. '
        'mIoU = mean IoU over the 5 classes Surface, Building, Vegetation, '
        'Tree, Car (Clutter excluded: the paper\'s / GeoSeg\'s convention), '
        f'averaged over seeds; (σ) = {kind} of that mIoU over seeds. Class '
        'columns: IoU averaged over seeds. mIoU-6 (MMSeg) = MMSeg '
        'IoUMetric\'s mIoU over all 6 classes (extra, not in the paper).')


MD_COLUMNS = ['Model', 'Backbone', 'Contrastive Loss', 'mIoU (σ)',
              *CLASSES.values(), 'mIoU-6 (MMSeg)', 'Runs (seeds)', 'Source']


def to_markdown(rows: List[dict], ddof: int) -> str:
    lines = [header_note(ddof), '',
             '| ' + ' | '.join(MD_COLUMNS) + ' |',
             '|' + '|'.join(['---'] * 3 + ['---:'] * (len(MD_COLUMNS) - 5)
                            + ['---'] * 2) + '|']
    for row in rows:
        runs = f'{row["num_seeds"]}' + (
            f' ({",".join(row["seeds"])})' if row['seeds'] else '')
        miou6 = '' if row['source'] != 'ours' else \
            f'{fmt(row["miou6"])} ({fmt(row["miou6_std"])})'
        cells = [model_label(row), row['backbone'], row['loss'],
                 f'{fmt(row["miou"])} ({fmt(row["std"])})',
                 *[fmt(row[c]) for c in CLASSES], miou6, runs,
                 row['source']]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


CSV_FIELDS = ['model', 'backbone', 'contrastive_loss', 'source', 'config',
              'num_seeds', 'seeds', 'miou_5cls_no_clutter',
              'miou_5cls_no_clutter_std', *[f'iou_{c}' for c in CLASSES],
              'miou_6cls_mmseg', 'miou_6cls_mmseg_std', 'std_ddof']


def to_csv(rows: List[dict], ddof: int) -> str:
    def num(value):
        return '' if value is None else f'{value:.6f}'

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for row in rows:
        record = dict(
            model=row['model'], backbone=row['backbone'],
            contrastive_loss=row['loss'], source=row['source'],
            config=row['config'], num_seeds=row['num_seeds'],
            seeds=' '.join(row['seeds']),
            miou_5cls_no_clutter=num(row['miou']),
            miou_5cls_no_clutter_std=num(row['std']),
            miou_6cls_mmseg=num(row['miou6']),
            miou_6cls_mmseg_std=num(row['miou6_std']),
            std_ddof=ddof if row['source'] == 'ours' else '')
        for c in CLASSES:
            record[f'iou_{c}'] = num(row[c])
        writer.writerow(record)
    return out.getvalue()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print the CT paper\'s Table 1 (ISPRS Potsdam) from '
        'the test results of tools/run_potsdam_grid.py.')
    parser.add_argument('--work-root', default='work_dirs/potsdam_grid',
                        help='folder with <config>/seed<s>/test/'
                        f'{RESULTS_NAME}')
    parser.add_argument('--configs', nargs='*',
                        help='only these configs (names or paths), in '
                        'this order; default: every folder in work-root')
    parser.add_argument('--paper', action='store_true',
                        help='add the paper\'s published Table 1 rows')
    parser.add_argument('--ddof', type=int, default=1, choices=(0, 1),
                        help='std over seeds: 1 = sample (default), '
                        '0 = population')
    parser.add_argument('--md', metavar='FILE', help='write Markdown here')
    parser.add_argument('--csv', metavar='FILE', help='write CSV here')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        groups = collect(args.work_root, args.configs,
                         warn=lambda m: print(m, file=sys.stderr))
    except TableError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    if not groups and not args.paper:
        print(f'error: no test results under {args.work_root}',
              file=sys.stderr)
        return 1
    rows = table_rows([summarize(g, args.ddof) for g in groups], args.paper)
    markdown = to_markdown(rows, args.ddof)
    print(markdown, end='')
    if args.md:
        with open(args.md, 'w') as f:
            f.write(markdown)
    if args.csv:
        with open(args.csv, 'w') as f:
            f.write(to_csv(rows, args.ddof))
    return 0


if __name__ == '__main__':
    sys.exit(main())
