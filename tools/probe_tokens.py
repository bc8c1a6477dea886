"""Patch-level k-NN and linear probes of frozen ViT tokens on Dubai tiles.

    python tools/probe_tokens.py configs/adclr/adclr_vit-tiny-p16_1xb16-300i_unlabelled-64px.py \
        --run adclr=work_dirs/adclr_dubai/iter_300.pth \
        --run dino=work_dirs/dino_dubai/iter_300.pth --run random= \
        [--dubai-root ../shared/data/dubai_aerial] [--short-side 128] \
        [--out probe.json]

The config gives the ViT architecture; each ``--run NAME=CHECKPOINT`` probes
that checkpoint's teacher backbone (``--source student`` for the student),
an empty checkpoint means random initialisation (seeded by ``--seed``).
Probes fit on the patches of the training tiles and are scored on the test
tiles (the Dubai converter's split by default: ct_mmseg.datasets.
dubai_aerial.DEFAULT_SPLIT). Prints one Markdown table per metric: rows are
runs, columns are layers.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from ct_mmseg.adclr.knn_eval import (  # noqa: E402
    build_frozen_vit, knn_and_linear_eval)
from ct_mmseg.datasets.dubai_aerial import CLASSES, DEFAULT_SPLIT  # noqa: E402
from ct_mmseg.visualisation.probe_report import (  # noqa: E402
    NoTilesError, load_tiles, metric_tables)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='pretraining config (architecture)')
    parser.add_argument('--run', action='append', required=True,
                        metavar='NAME=CHECKPOINT',
                        help='a checkpoint to probe; empty = random init')
    parser.add_argument('--source', default='teacher',
                        choices=['teacher', 'student'])
    parser.add_argument('--dubai-root', default='../shared/data/dubai_aerial')
    parser.add_argument('--train-tiles', type=int, nargs='+',
                        default=list(DEFAULT_SPLIT['train']))
    parser.add_argument('--test-tiles', type=int, nargs='+',
                        default=list(DEFAULT_SPLIT['test']))
    parser.add_argument('--short-side', type=int, default=128,
                        help='images are resized to this short side (px)')
    parser.add_argument('--min-purity', type=float, default=0.5,
                        help='a patch is labelled by a class covering at '
                        'least this share of it')
    parser.add_argument('--k', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the rows as JSON here')
    return parser.parse_args(argv)


def parse_runs(specs):
    """[(name, checkpoint or None)] of ``NAME=CHECKPOINT`` arguments."""
    runs = []
    for spec in specs:
        name, sep, checkpoint = spec.partition('=')
        if not sep or not name:
            raise SystemExit(f'error: --run {spec!r} is not NAME=CHECKPOINT')
        runs.append((name, checkpoint or None))
    return runs


def tiles_or_exit(root, tiles):
    """:func:`load_tiles`, or exit with ``error: no images of tiles ...``."""
    try:
        return load_tiles(root, tiles)
    except NoTilesError as error:
        raise SystemExit(f'error: {error}') from None


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = parse_runs(args.run)
    start = time.time()
    train = tiles_or_exit(args.dubai_root, args.train_tiles)
    test = tiles_or_exit(args.dubai_root, args.test_tiles)
    rows = []
    for name, checkpoint in runs:
        vit = build_frozen_vit(args.config, checkpoint, args.source,
                               args.seed)
        for row in knn_and_linear_eval(vit, train, test, len(CLASSES),
                                       args.short_side, args.min_purity,
                                       args.k, args.seed):
            rows.append(dict(run=name, checkpoint=checkpoint, **row))
    print(f'{len(train)} train / {len(test)} test images (tiles '
          f'{args.train_tiles} / {args.test_tiles}), short side '
          f'{args.short_side} px, {rows[0]["train_patches"]} / '
          f'{rows[0]["test_patches"]} labelled patches, '
          f'{time.time() - start:.0f} s')
    print('\n'.join(metric_tables(rows, [name for name, _ in runs])))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), rows=rows), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
