"""Make the Dubai subset shipped in ct_mmseg/datasets/dubai_mini/.

    python tools/make_dubai_mini.py ../shared/data/dubai_aerial \\
        -o ct_mmseg/datasets/dubai_mini

reads the Dubai aerial release (the folder holding ``Tile 1`` ...
``Tile 8``), takes the images of ``ct_mmseg.datasets.dubai_subset.SELECTION``,
halves them (images area-averaged, masks nearest-neighbour, every mask pixel
checked to be a release colour) and writes them in the release layout. The
folder's README.md (source, licence, the list) is not written here.
"""
import argparse
import os.path as osp
import sys

try:
    from ct_mmseg.datasets import dubai_subset
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from ct_mmseg.datasets import dubai_subset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('release', help='folder holding "Tile 1" ... "Tile 8"')
    parser.add_argument('-o', '--out-dir', default=dubai_subset.MINI_ROOT)
    parser.add_argument('--factor', type=float, default=dubai_subset.FACTOR,
                        help='width and height are divided by it')
    parser.add_argument('--jpeg-quality', type=int,
                        default=dubai_subset.JPEG_QUALITY)
    args = parser.parse_args(argv)
    try:
        records = dubai_subset.make_subset(
            args.release, args.out_dir, factor=args.factor,
            jpeg_quality=args.jpeg_quality, log=print)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print('| tile | image | released (w x h) | shipped (w x h) | kB |')
    print('|---|---|---|---|---|')
    for r in records:
        print(f'| {r["tile"]} | {r["name"]} | {r["size"][0]} x {r["size"][1]}'
              f' | {r["new_size"][0]} x {r["new_size"][1]} | '
              f'{r["bytes"] / 1e3:.0f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
