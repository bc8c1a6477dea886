"""Draw image | ground truth | prediction for held-out images, with the
per-class IoU table (ct_mmseg.visualisation.prediction_figure does the work).

    python tools/show_predictions.py work_dirs/demo/test/pred \\
        --img-dir data/dubai_mini/img_dir/test_whole \\
        --ann-dir data/dubai_mini/ann_dir/test_whole \\
        --out work_dirs/demo/test/predictions.png \\
        --metric-file work_dirs/demo/test/per_class_iou.json

``pred_dir`` holds the label PNGs of MMSeg's ``tools/test.py --out``; each
is matched with the image and ground truth of the same name. Classes and
palette come from the dataset class (``--dataset``, MMSeg's DATASETS). With
``--metric-file`` (PerClassIoUMetric's JSON) the IoU computed here from the
PNGs must agree with the one tools/test.py reported.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys

try:
    import ct_mmseg  # noqa: F401  (registers DubaiAerialDataset)
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import ct_mmseg  # noqa: F401
from ct_mmseg.visualisation.prediction_figure import draw_prediction_figure


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('pred_dir', help='predicted label PNGs')
    parser.add_argument('--img-dir', required=True, help='the images')
    parser.add_argument('--ann-dir', required=True,
                        help='the ground-truth label PNGs')
    parser.add_argument('--out', required=True, help='the figure (PNG)')
    parser.add_argument('--dataset', default='DubaiAerialDataset',
                        help='dataset class giving classes and palette')
    parser.add_argument('--img-suffix', default='.png')
    parser.add_argument('--crop-size', type=int, default=256)
    parser.add_argument('--crops-per-image', type=int, default=2)
    parser.add_argument('--title', default=None)
    parser.add_argument('--metric-file', default=None,
                        help="PerClassIoUMetric's JSON to check against")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg.registry import DATASETS
    dataset = DATASETS.get(args.dataset)
    if dataset is None:
        print(f'error: --dataset {args.dataset} is not in MMSeg\'s '
              'DATASETS', file=sys.stderr)
        return 1
    meta = dataset.METAINFO
    if not osp.isdir(args.pred_dir):
        print(f'error: pred_dir {args.pred_dir} is not a folder',
              file=sys.stderr)
        return 1
    names = sorted(n for n in os.listdir(args.pred_dir) if n.endswith('.png'))
    if not names:
        print(f'error: no *.png in pred_dir {args.pred_dir}', file=sys.stderr)
        return 1
    stems = [osp.splitext(n)[0] for n in names]
    try:
        result = draw_prediction_figure(
            [osp.join(args.img_dir, s + args.img_suffix) for s in stems],
            [osp.join(args.ann_dir, s + '.png') for s in stems],
            [osp.join(args.pred_dir, n) for n in names],
            meta['classes'], meta['palette'], args.out,
            crop_size=args.crop_size, crops_per_image=args.crops_per_image,
            title=args.title)
    except (OSError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(result['markdown'], end='')
    print(f'figure: {result["figure"]}\ntable: {result["table_file"]}')
    if args.metric_file:
        with open(args.metric_file) as f:
            reported = json.load(f)
        mismatched = []
        for name, ours in zip(meta['classes'], result['scores']['iou']):
            theirs = reported['iou'].get(name)
            theirs = float('nan') if theirs is None else theirs
            both_nan = math.isnan(ours) and math.isnan(theirs)
            if not (both_nan or abs(ours - theirs) <= 1e-6):
                mismatched.append(
                    f'{name}: {ours:.6f} here, {theirs:.6f} there')
        if mismatched:
            print(f'error: the IoU from the PNGs differs from '
                  f'{args.metric_file}: {"; ".join(mismatched)}',
                  file=sys.stderr)
            return 1
        print(f'per-class IoU matches {args.metric_file} (tools/test.py)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
