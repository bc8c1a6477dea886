"""Draw CT's positive and negative patches for one class on a demo image.

The figure of ``docs/how_ct_works.md`` (``docs/figures/ct_patches.png``),
drawn by :mod:`ct_mmseg.visualisation.ct_patches`: the image and its ground
truth, then per stride (4, 8, 16, 32 by default, Swin's four stages) the
class's positive and negative patches. By default a 256 x 256 window of the
first validation image at full resolution, the size and scale of the demo
configs' training crops. With no demo data at ``--data-root`` it is made
first (:func:`ct_mmseg.datasets.demo_potsdam_prepare.prepare`, default
parameters), so the committed figure can be redrawn with::

    python tools/draw_ct_patches.py --out docs/figures/ct_patches.png
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

from ct_mmseg.visualisation.ct_patches import (  # noqa: E402
    draw, ensure_demo_data, load_demo_sample)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/potsdam_demo',
                        help='converted Potsdam (demo) data; made if absent')
    parser.add_argument('--split', default='val')
    parser.add_argument('--index', type=int, default=0)
    parser.add_argument('--class-name', default='building')
    parser.add_argument('--size', type=int, default=512,
                        help='longer image side after resizing (512: the '
                        'demo crops at full resolution)')
    parser.add_argument('--crop', type=int, nargs=3, default=[256, 0, 0],
                        metavar=('SIZE', 'TOP', 'LEFT'),
                        help='then cut a SIZE x SIZE window at (TOP, LEFT), '
                        'like the demo configs\' 256 px training crops '
                        '(SIZE 0: no crop)')
    parser.add_argument('--strides', type=int, nargs='+',
                        default=[4, 8, 16, 32])
    parser.add_argument('--out', default='docs/figures/ct_patches.png')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ensure_demo_data(args.data_root)
    image, gt, metainfo, path = load_demo_sample(args.data_root, args.split,
                                                 args.index, args.size)
    size, top, left = args.crop
    if size:
        image = image[top:top + size, left:left + size]
        gt = gt[top:top + size, left:left + size]
    classes = list(metainfo['classes'])
    if args.class_name not in classes:
        raise SystemExit(f'--class-name {args.class_name!r} is not one of '
                         f'{classes}')
    out = draw(image, gt, metainfo, classes.index(args.class_name),
               args.strides, args.out,
               title=f'{osp.basename(path)} ({gt.shape[1]}x{gt.shape[0]} '
               f'window): CT patches of class "{args.class_name}" per stride')
    print(f'wrote {out} ({osp.getsize(out) // 1024} KB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
