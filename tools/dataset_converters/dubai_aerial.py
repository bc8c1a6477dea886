"""Convert the Dubai aerial imagery set to MMSegmentation's layout.

    python tools/dataset_converters/dubai_aerial.py \\
        "/path/to/Semantic segmentation dataset" -o data/dubai_aerial

reads the folder as released (``Tile 1`` ... ``Tile 8``, each with
``images/*.jpg`` and colour-coded ``masks/*.png``) and writes

    data/dubai_aerial/img_dir/{train,val,test}/<crop>.png  (RGB)
    data/dubai_aerial/ann_dir/{train,val,test}/<crop>.png  (class indices)

named ``tile<N>_<image>_<x0>_<y0>_<x1>_<y1>.png`` (the tile, the source
image and the box in it).

Masks: building 0, land 1, road 2, vegetation 3, water 4; unlabeled
(#9B9B9B), black and any other colour 255 (ignored). Crops are
``--clip_size`` squares every ``--stride_size`` pixels (train) or
``--eval_stride_size`` pixels (val / test); the last crop of a row or column
is shifted back inside the image, and an image shorter than a crop is padded
(image 0, mask 255). Whole tiles go to one split (``--train_tiles`` ...), so
overlapping crops never cross splits. The work is done by
``ct_mmseg.datasets.dubai_aerial``; see docs/dubai_aerial.md.
"""
import argparse
import os.path as osp
import sys

import numpy as np

try:
    from ct_mmseg.datasets import dubai_aerial as dubai
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    from ct_mmseg.datasets import dubai_aerial as dubai


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the Dubai aerial imagery set to mmsegmentation '
        'format')
    parser.add_argument('dataset_path',
                        help='folder holding "Tile 1" ... "Tile 8"')
    parser.add_argument('-o', '--out_dir',
                        default=osp.join('data', 'dubai_aerial'),
                        help='output path (default data/dubai_aerial)')
    parser.add_argument('--clip_size', type=int,
                        default=dubai.DEFAULT_CLIP_SIZE,
                        help='side of the square crops in pixels')
    parser.add_argument('--stride_size', type=int,
                        default=dubai.DEFAULT_STRIDE_SIZE,
                        help='step between train crops (< clip_size: '
                        'overlapping crops)')
    parser.add_argument('--eval_stride_size', type=int, default=None,
                        help='step between val and test crops (default: '
                        'clip_size, so nearly every pixel is scored once)')
    for split in dubai.SPLITS:
        parser.add_argument(
            f'--{split}_tiles', type=int, nargs='+',
            default=list(dubai.DEFAULT_SPLIT[split]),
            help=f'tile numbers of the {split} split (default '
            f'{" ".join(map(str, dubai.DEFAULT_SPLIT[split]))})')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    split_tiles = {s: getattr(args, f'{s}_tiles') for s in dubai.SPLITS}
    print(f'Converting {args.dataset_path} -> {args.out_dir}, tiles '
          + ', '.join(f'{s} {split_tiles[s]}' for s in dubai.SPLITS))
    summary = dubai.convert(
        args.dataset_path, args.out_dir, split_tiles,
        clip_size=args.clip_size, stride_size=args.stride_size,
        eval_stride_size=args.eval_stride_size,
        progress=lambda pair: print(f'  tile {pair.tile} {pair.name}'))
    width = max(len(c) for c in dubai.CLASSES)
    print('Class pixels per tile (before cropping):')
    print('  tile ' + ' '.join(f'{c:>{width + 2}}' for c in dubai.CLASSES))
    for tile, counts in sorted(summary['pixels'].items()):
        print(f'  {tile:>4} ' + ' '.join(f'{n:>{width + 2}}' for n in counts))
    for split in dubai.SPLITS:
        tiles = [t for t in split_tiles[split] if t in summary['pixels']]
        counts = sum((summary['pixels'][t] for t in tiles),
                     np.zeros(len(dubai.CLASSES), np.int64))
        missing = [c for c, n in zip(dubai.CLASSES, counts) if n == 0]
        note = f'  (no {", ".join(missing)})' if missing else ''
        print(f'{split}: {summary["crops"][split]} crops{note}')
    print('Done!')


if __name__ == '__main__':
    main()
