"""Prepare the built-in synthetic Potsdam demo dataset for MMSegmentation.

Steps (:func:`ct_mmseg.datasets.demo_potsdam_prepare.prepare`):

1. write the raw ISPRS-format zips (``2_Ortho_RGB.zip``, ``5_Labels_all.zip``)
   with :mod:`ct_mmseg.datasets.demo_potsdam` into ``--raw-dir``, unless
   matching ones are already there;
2. run MMSeg's own converter, ``tools/dataset_converters/potsdam.py`` as
   shipped inside the installed ``mmseg`` package (``mmseg/.mim/...``), so the
   demo data goes through exactly the same path as the real release; it
   writes 512x512 PNG crops to ``--data-root``/``{img_dir,ann_dir}/{train,val}``;
3. check the number of crops against what the tile counts imply.

The script is idempotent: when ``--data-root`` already holds the expected
crops of the same demo parameters it does nothing (and says so), unless
``--force`` is given.

Example::

    python tools/prepare_demo_data.py --data-root data/potsdam_demo \\
        --raw-dir data/potsdam_demo_raw
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

from ct_mmseg.datasets.demo_potsdam_prepare import (  # noqa: E402
    CLIP_SIZE, PrepareError, prepare)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the synthetic Potsdam demo data and convert it '
        'with MMSeg\'s own Potsdam converter.')
    parser.add_argument('--data-root', default='data/potsdam_demo',
                        help='converted dataset (img_dir/, ann_dir/)')
    parser.add_argument('--raw-dir', default='data/potsdam_demo_raw',
                        help='raw ISPRS-format zips (only these two zips)')
    parser.add_argument('--tile-size', type=int, default=1024,
                        help=f'tile side in px, >= {CLIP_SIZE}')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate and reconvert even if up to date')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args.data_root, args.raw_dir, args.num_train, args.num_val,
                args.tile_size, args.seed, args.force)
    except PrepareError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
