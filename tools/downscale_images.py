"""Write downscaled copies of images: a faster folder to pretrain from.

    python tools/downscale_images.py "../shared/data/dubai_aerial/Tile 1/images" \
        ... -o data/dubai_aerial_train_quarter --factor 4

Self-supervised views are small (64 px in the tiny ADCLR configs) and cut
from crops of a quarter of the image or more, so decoding full-size aerial
tiles costs most of a CPU run while adding little: a 1/4-scale copy keeps
every 64 px view of a tile wider than 512 px at (nearly) the same detail.
A file in a folder named ``images`` is written as ``<the folder above>_<name>``
(``Tile 1/images/image_part_001.jpg`` -> ``Tile 1_image_part_001.jpg``), so
the tiles of a set laid out like the Dubai one do not collide; other files
keep their names.
"""
import argparse
import os
import os.path as osp

from PIL import Image

SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff')


def image_files(paths):
    for path in paths:
        if osp.isfile(path):
            yield path
            continue
        for root, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                if name.lower().endswith(SUFFIXES):
                    yield osp.join(root, name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('-o', '--out', required=True)
    parser.add_argument('--factor', type=float, default=4)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    count = 0
    for path in image_files(args.inputs):
        with Image.open(path) as image:
            image = image.convert('RGB')
            size = (max(1, round(image.width / args.factor)),
                    max(1, round(image.height / args.factor)))
            name = f'{osp.basename(osp.dirname(osp.dirname(path)))}_' \
                if osp.basename(osp.dirname(path)) == 'images' else ''
            image.resize(size, Image.BICUBIC).save(
                osp.join(args.out, name + osp.basename(path)), quality=95)
        count += 1
    print(f'wrote {count} images to {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
