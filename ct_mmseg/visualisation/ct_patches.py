"""CT's positive and negative patches of one class, drawn on a demo image.

The figure of ``docs/how_ct_works.md`` (``docs/figures/ct_patches.png``,
``tools/draw_ct_patches.py``):

* column 1: the image and its ground truth (ISPRS colours; black = ignore,
  the boundary pixels of the labels);
* then one column per stride: top, the **positive** patches of the class
  (every pixel is that class), bottom, its **negative** patches (no pixel of
  that class). Patches in neither set - mixed patches that hold some of the
  class, or patches with an ignore pixel among the class's pixels - stay
  greyed out.

The masks come from :func:`ct_mmseg.core.patch_masks`, the very function the
CT head calls during training, on the GT as the training pipeline makes it:
MMSeg's ``PotsdamDataset`` (``reduce_zero_label``: the boundary label becomes
255) and MMSeg's ``Resize`` (nearest for the mask). The PNG is saved with an
adaptive 256-colour palette so that it stays small enough to commit (the
synthetic images have few colours).
"""
import os
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np
import torch

IGNORE_INDEX = 255
POSITIVE_COLOUR = (30, 90, 255)
NEGATIVE_COLOUR = (255, 120, 0)


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
    from ..core import patch_masks
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
    and transforms, resized so that the longer side is ``size``.

    Returns:
        tuple: image (H, W, 3) uint8, GT (H, W), the dataset's metainfo and
        the image path.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

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


def ensure_demo_data(data_root: str):
    """Make the demo data at ``data_root`` (default parameters, raw zips in
    ``<data_root>_raw``) unless it has an ``img_dir``."""
    if osp.isdir(osp.join(data_root, 'img_dir')):
        return
    from ..datasets.demo_potsdam_prepare import prepare
    prepare(data_root, raw_dir=data_root.rstrip('/') + '_raw')


def colour_gt(gt: np.ndarray, palette) -> np.ndarray:
    """RGB picture (H, W, 3) of the labels (H, W); ignore pixels black."""
    palette = np.asarray(palette, dtype=np.uint8)
    out = np.zeros((*gt.shape, 3), dtype=np.uint8)
    valid = gt < len(palette)
    out[valid] = palette[gt[valid]]
    return out


def overlay(image: np.ndarray, mask: np.ndarray, colour) -> np.ndarray:
    """The image (H, W, 3) greyed out, with the pixels of ``mask`` (H, W)
    tinted ``colour``."""
    grey = image.mean(axis=2, keepdims=True).repeat(3, axis=2)
    base = 0.35 * grey + 0.65 * 235  # faded
    tint = 0.45 * image + 0.55 * np.asarray(colour, dtype=float)
    return np.where(mask[..., None], tint, base).astype(np.uint8)


def _draw_grid(ax, s, shape):
    """Patch borders every ``s`` px on an image of ``shape`` (H, W)."""
    for x in range(s, shape[1], s):
        ax.axvline(x - 0.5, color='k', lw=0.3, alpha=0.4)
    for y in range(s, shape[0], s):
        ax.axhline(y - 0.5, color='k', lw=0.3, alpha=0.4)


def _draw_stride(axes, image, gt, s, pos, neg):
    """The positive (top) and negative (bottom) panel of one stride."""
    for ax, mask, colour, kind in ((axes[0], pos, POSITIVE_COLOUR, 'positive'),
                                   (axes[1], neg, NEGATIVE_COLOUR,
                                    'negative')):
        ax.imshow(overlay(image, mask, colour))
        count = int(mask.sum()) // (s * s)
        total = gt.size // (s * s)
        ax.set_title(f'stride {s}: {count}/{total} {kind}', fontsize=9)
        if s >= 16:  # the patch grid is readable from 16 px on
            _draw_grid(ax, s, gt.shape)


def _legend(fig, classes, palette):
    """One swatch per class and one for ignore, below the panels."""
    from matplotlib.patches import Patch
    handles = [Patch(color=np.asarray(palette[k]) / 255, label=c, ec='k',
                     lw=0.3) for k, c in enumerate(classes)]
    handles.append(Patch(color='k', label='ignore (255)'))
    fig.legend(handles=handles, loc='lower center', ncol=len(handles),
               fontsize=8, frameon=False)


def _save_small(fig, out, dpi):
    """Save as PNG with an adaptive palette: a few tens of KB instead of a
    few hundred."""
    import matplotlib.pyplot as plt
    from PIL import Image
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    Image.open(out).convert('RGB').quantize(colors=256).save(
        out, optimize=True)


def draw(image, gt, metainfo, class_index: int, strides: Sequence[int],
         out: str, title: str = '', dpi: int = 100) -> str:
    """Draw the figure of ``image`` (H, W, 3) and ``gt`` (H, W) for one
    class into ``out``; returns ``out``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

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
    for col, (s, (pos, neg)) in enumerate(zip(strides, masks), start=1):
        _draw_stride(axes[:, col], image, gt, s, pos, neg)
    axes[0, 1].set_ylabel(f'positives of "{name}"\n(all pixels {name})',
                          fontsize=9)
    axes[1, 1].set_ylabel(f'negatives of "{name}"\n(no pixel {name})',
                          fontsize=9)
    _legend(fig, classes, palette)
    fig.suptitle(title or f'CT patches of class "{name}" per stride',
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    _save_small(fig, out, dpi)
    return out
