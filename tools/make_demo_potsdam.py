"""Write a small, deterministic synthetic dataset in the raw ISPRS Potsdam format.

Command line of :func:`ct_mmseg.datasets.demo_potsdam.write_demo_potsdam`:
the two archives MMSeg's Potsdam converter reads (``2_Ortho_RGB.zip``,
``5_Labels_all.zip``), byte-identical for the same arguments.

Example::

    python tools/make_demo_potsdam.py data/potsdam_demo_raw --num-train 4 --num-val 2
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

from ct_mmseg.datasets.demo_potsdam import (  # noqa: E402
    TRAIN_IDS, VAL_IDS, write_demo_potsdam)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small deterministic synthetic dataset in the raw '
        'ISPRS Potsdam format (2_Ortho_RGB.zip + 5_Labels_all.zip).')
    parser.add_argument('out_dir', help='output folder for the two zips')
    parser.add_argument('--num-train', type=int, default=4,
                        help=f'tiles with train ids (max {len(TRAIN_IDS)})')
    parser.add_argument('--num-val', type=int, default=2,
                        help=f'tiles with val ids (max {len(VAL_IDS)})')
    parser.add_argument('--tile-size', type=int, default=1024,
                        help='tile side in px (the converter crops 512 px)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    paths = write_demo_potsdam(args.out_dir, args.num_train, args.num_val,
                               args.tile_size, args.seed)
    for path in paths:
        print(f'wrote {path} ({osp.getsize(path) / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
