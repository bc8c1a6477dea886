"""Draw CT's positive and negative patches for one class on a demo image.

The figure of ``docs/how_ct_works.md`` (``docs/figures/ct_patches.png``):

* column 1: the image and its ground truth (ISPRS colours; black = ignore,
  the boundary pixels of the labels). By default a 256 x 256 window of the
  first validation image at full resolution, the size and scale of the demo
  configs' training crops;
* then one column per stride (4, 8, 16, 32 by default, Swin's four stages):
  top, the **positive** patches of the class (every pixel is that class),
  bottom, its **negative** patches (no pixel of that class). Patches in
  neither set - mixed patches that hold some of the class, or patches with an
  ignore pixel among the class's pixels - stay greyed out.

The masks come from :func:`ct_mmseg.core.patch_masks`, the very function the
CT head calls during training, on the GT as the training pipeline makes it:
MMSeg's ``PotsdamDataset`` (``reduce_zero_label``: the boundary label becomes
255) and MMSeg's ``Resize`` (nearest for the mask). With no demo data at
``--data-root`` it is made first (``tools/prepare_demo_data.py``, default
parameters), so the committed figure can be redrawn with::

    python tools/draw_ct_patches.py --out docs/figures/ct_patches.png

The PNG is saved with an adaptive 256-colour palette so that it stays small
enough to commit (the synthetic images have few colours).
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
from typing import List, Sequence, Tuple

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
IGNORE_INDEX = 255


def stride_masks(gt: np.ndarray, class_index: int, strides: Sequence[int],
                 num_classes: int, ignore_index: int = IGNORE_INDEX
                 ) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Pixel-level positive / negative maps of one class, per stride.

    Args:
        gt (ndarray): (H, W) labels; H and W multiples of every stride (a
            token grid that covers the image exactly, as for a 256 px input).
        class_index (int): the class shown.
        strides (Sequence[int]): patch sizes.
        num_classes (int): K.

    Returns:
        list[tuple[ndarray, ndarray]]: per stride, bool (H, W) maps: pixels
        of positive patches, pixels of negative patches.
    """
    from ct_mmseg.core import patch_masks
    height, width = gt.shape
    out = []
    for s in strides:
        if height % s or width % s:
            raise ValueError(f'image {height}x{width} is not a multiple of '
                             f'stride {s}')
        h, w = height // s, width // s
        masks = patch_masks(torch.from_numpy(gt)[None].long(), s, (h, w),
                            num_classes, ignore_index)
        grid = [m[class_index].reshape(h, w).numpy() for m in masks]
        # one patch -> an s x s block of pixels
        out.append(tuple(np.kron(g, np.ones((s, s), dtype=bool)).astype(bool)
                         for g in grid))
    return out


def load_demo_sample(data_root: str, split: str, index: int, size: int):
    """Image (RGB uint8) and GT of one demo image, through MMSeg's dataset
    and transforms, resized so that the longer side is ``size``."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    import ct_mmseg  # noqa: F401
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='PotsdamDataset', data_root=data_root,
        data_prefix=dict(img_path=f'img_dir/{split}',
                         seg_map_path=f'ann_dir/{split}'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='Resize', scale=(size, size), keep_ratio=True),
        ]))
    if not 0 <= index < len(dataset):
        raise IndexError(f'--index {index}: the {split} split has '
                         f'{len(dataset)} images')
    sample = dataset[index]
    image = sample['img'][..., ::-1]  # MMSeg loads BGR
    return image, sample['gt_seg_map'], dataset.metainfo, sample['img_path']


def _ensure_demo_data(data_root: str):
    if osp.isdir(osp.join(data_root, 'img_dir')):
        return
    spec = importlib.util.spec_from_file_location(
        'prepare_demo_data', osp.join(REPO, 'tools', 'prepare_demo_data.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.prepare(data_root, raw_dir=data_root.rstrip('/') + '_raw')


def colour_gt(gt: np.ndarray, palette) -> np.ndarray:
    """RGB picture of the labels; ignore pixels black."""
    palette = np.asarray(palette, dtype=np.uint8)
    out = np.zeros((*gt.shape, 3), dtype=np.uint8)
    valid = gt < len(palette)
    out[valid] = palette[gt[valid]]
    return out


def overlay(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """The image greyed out, with the pixels of ``mask`` tinted ``colour``."""
    grey = image.mean(axis=2, keepdims=True).repeat(3, axis=2)
    base = 0.35 * grey + 0.65 * 235  # faded
    tint = 0.45 * image + 0.55 * np.asarray(colour, dtype=float)
    return np.where(mask[..., None], tint, base).astype(np.uint8)


def draw(image, gt, metainfo, class_index: int, strides: Sequence[int],
         out: str, title: str = '', dpi: int = 100) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from PIL import Image

    classes, palette = metainfo['classes'], metainfo['palette']
    masks = stride_masks(gt, class_index, strides, len(classes))
    cols = 1 + len(strides)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 6.0))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].imshow(image)
    axes[0, 0].set_title('image', fontsize=9)
    axes[1, 0].imshow(colour_gt(gt, palette))
    axes[1, 0].set_title('ground truth (black: ignore)', fontsize=9)
    name = classes[class_index]
    pos_colour = (30, 90, 255)
    neg_colour = (255, 120, 0)
    for col, (s, (pos, neg)) in enumerate(zip(strides, masks), start=1):
        for row, mask, colour, kind in ((0, pos, pos_colour, 'positive'),
                                        (1, neg, neg_colour, 'negative')):
            ax = axes[row, col]
            ax.imshow(overlay(image, mask, colour))
            count = int(mask.sum()) // (s * s)
            total = gt.size // (s * s)
            ax.set_title(f'stride {s}: {count}/{total} {kind}', fontsize=9)
            if s >= 16:  # the patch grid is readable from 16 px on
                for x in range(s, gt.shape[1], s):
                    ax.axvline(x - 0.5, color='k', lw=0.3, alpha=0.4)
                for y in range(s, gt.shape[0], s):
                    ax.axhline(y - 0.5, color='k', lw=0.3, alpha=0.4)
    axes[0, 1].set_ylabel(f'positives of "{name}"\n(all pixels {name})',
                          fontsize=9)
    axes[1, 1].set_ylabel(f'negatives of "{name}"\n(no pixel {name})',
                          fontsize=9)
    handles = [Patch(color=np.asarray(palette[k]) / 255, label=c, ec='k',
                     lw=0.3) for k, c in enumerate(classes)]
    handles.append(Patch(color='k', label='ignore (255)'))
    fig.legend(handles=handles, loc='lower center', ncol=len(handles),
               fontsize=8, frameon=False)
    fig.suptitle(title or f'CT patches of class "{name}" per stride',
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    # adaptive palette: a few tens of KB instead of a few hundred
    Image.open(out).convert('RGB').quantize(colors=256).save(
        out, optimize=True)
    return out


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
    _ensure_demo_data(args.data_root)
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
