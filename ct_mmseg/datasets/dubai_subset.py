"""The small Dubai aerial subset shipped with ct_mmseg (``dubai_mini/``).

``ct_mmseg/datasets/dubai_mini/`` holds a few images of the Dubai aerial
imagery set (Humans in the Loop with MBRSC, public domain, CC0), downscaled,
in the release's own layout (``Tile N/images/*.jpg``, ``Tile N/masks/*.png``),
so that ``tools/dataset_converters/dubai_aerial.py`` converts it exactly as
it converts the full release. ``tools/run_demo.sh`` trains and tests on it.

This module makes that folder from the release (``tools/make_dubai_mini.py``
is its command line) and says how the subset is split:

* :data:`SELECTION`: the images taken, per tile;
* :data:`MINI_SPLIT`: whole tiles per split (train 1, 4, 5, 6, 7 / val 2 /
  test 8, as the release's default split but with tile 8 the one held-out
  test tile); :func:`converter_args` gives the converter's options for it;
* :func:`downscale_image` (area averaging) and :func:`downscale_mask`
  (nearest neighbour, so every pixel keeps one of the release colours;
  :func:`check_mask_colours` verifies it);
* :func:`make_subset`: all of it, written to a folder.
"""
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .dubai_aerial import (CLASS_COLOURS, IGNORED_COLOURS, code_to_hex,
                           hex_to_code, read_rgb, rgb_to_codes)

# The shipped folder (package data, see setup.py).
MINI_ROOT = osp.join(osp.dirname(osp.abspath(__file__)), 'dubai_mini')
# Images per tile: a few per train tile, chosen from the per-image class
# fractions so that every class is well represented (buildings from tiles 4
# and 7, water from 4, 5 and 6, vegetation from 1, 4 and 7); one image of
# the val tile 2 with all five classes; two images of the held-out tile 8
# with all five classes.
SELECTION: Dict[int, Tuple[str, ...]] = {
    1: ('image_part_006', 'image_part_009'),
    2: ('image_part_005',),
    4: ('image_part_003', 'image_part_005'),
    5: ('image_part_008',),
    6: ('image_part_004',),
    7: ('image_part_002', 'image_part_004'),
    8: ('image_part_005', 'image_part_008'),
}
MINI_SPLIT: Dict[str, Tuple[int, ...]] = {
    'train': (1, 4, 5, 6, 7), 'val': (2,), 'test': (8,)}
FACTOR = 2  # images and masks are 1/2 of the release's width and height
JPEG_QUALITY = 90
# Every colour a released mask holds: the five classes and the two ignored.
RELEASE_COLOURS = tuple(CLASS_COLOURS) + tuple(IGNORED_COLOURS.values())


def converter_args(split: Optional[Dict[str, Sequence[int]]] = None
                   ) -> List[str]:
    """Options of ``tools/dataset_converters/dubai_aerial.py`` for the
    subset's split: ``['--train_tiles', '1', ..., '--test_tiles', '8']``."""
    split = MINI_SPLIT if split is None else split
    args = []
    for name in ('train', 'val', 'test'):
        args += [f'--{name}_tiles', *(str(t) for t in split[name])]
    return args


def downscaled_size(width: int, height: int, factor: float) -> Tuple[int,
                                                                    int]:
    """``(width, height)`` divided by ``factor``, rounded, at least 1."""
    if not factor >= 1:
        raise ValueError(f'factor must be >= 1 (a downscale), got {factor}')
    return (max(1, int(round(width / factor))),
            max(1, int(round(height / factor))))


def downscale_image(rgb: np.ndarray, factor: float) -> np.ndarray:
    """(H, W, 3) uint8 photo -> (h, w, 3) uint8, area-averaged (PIL's BOX
    filter: each output pixel is the mean of the input pixels it covers),
    with ``(w, h) = downscaled_size(W, H, factor)``."""
    image = Image.fromarray(np.asarray(rgb))
    return np.asarray(image.resize(downscaled_size(*image.size, factor),
                                   Image.BOX))


def downscale_mask(rgb: np.ndarray, factor: float) -> np.ndarray:
    """(H, W, 3) uint8 colour mask -> (h, w, 3) uint8 by nearest neighbour:
    every output pixel is a copy of one input pixel, so no colour is mixed
    (a bilinear or area filter would make colours that are no class)."""
    image = Image.fromarray(np.asarray(rgb))
    return np.asarray(image.resize(downscaled_size(*image.size, factor),
                                   Image.NEAREST))


def check_mask_colours(rgb: np.ndarray, where: str,
                       colours: Sequence[str] = RELEASE_COLOURS) -> None:
    """Raise ValueError, naming ``where``, if a pixel of the (H, W, 3) mask
    has a colour that is not in ``colours`` (#RRGGBB)."""
    found = np.unique(rgb_to_codes(rgb))
    allowed = np.array([hex_to_code(c) for c in colours])
    unknown = found[~np.isin(found, allowed)]
    if unknown.size:
        shown = ', '.join(code_to_hex(c) for c in unknown[:5])
        raise ValueError(f'{where}: {unknown.size} colour(s) that are not '
                         f'release colours, e.g. {shown}')


def _folder_size(root: str) -> int:
    return sum(osp.getsize(osp.join(folder, name))
               for folder, _, names in os.walk(root) for name in names)


def make_subset(release_root: str,
                out_dir: str,
                selection: Optional[Dict[int, Sequence[str]]] = None,
                factor: float = FACTOR,
                jpeg_quality: int = JPEG_QUALITY,
                log: Optional[Callable[[str], None]] = None) -> List[Dict]:
    """Write the downscaled subset of the release at ``release_root`` to
    ``out_dir`` in the release layout.

    Args:
        release_root (str): the folder holding ``Tile 1`` ... ``Tile 8``.
        out_dir (str): gets ``Tile N/images/<name>.jpg`` (JPEG,
            ``jpeg_quality``) and ``Tile N/masks/<name>.png`` (RGB PNG).
        selection (dict): ``{tile: (image name, ...)}``, default
            :data:`SELECTION`.
        factor (float): width and height are divided by it.
        jpeg_quality (int): quality of the re-encoded JPEG images.
        log (callable): receives one line per image.

    Returns:
        list[dict]: per image ``tile``, ``name``, ``size`` (w, h released),
        ``new_size`` (w, h written) and ``bytes`` (image + mask files).

    Raises:
        FileNotFoundError: a selected image or mask is missing (named).
        ValueError: image and mask sizes differ, or a written mask holds a
            colour that is no release colour (the file is named).
    """
    selection = SELECTION if selection is None else selection
    records = []
    for tile in sorted(selection):
        for name in selection[tile]:
            folder = osp.join(release_root, f'Tile {tile}')
            image_path = osp.join(folder, 'images', name + '.jpg')
            mask_path = osp.join(folder, 'masks', name + '.png')
            for path in (image_path, mask_path):
                if not osp.isfile(path):
                    raise FileNotFoundError(f'selected file {path} does not '
                                            'exist')
            image, mask = read_rgb(image_path), read_rgb(mask_path)
            if image.shape[:2] != mask.shape[:2]:
                raise ValueError(f'{image_path} is {image.shape[:2]} but '
                                 f'{mask_path} is {mask.shape[:2]}')
            small_image = downscale_image(image, factor)
            small_mask = downscale_mask(mask, factor)
            out_image = osp.join(out_dir, f'Tile {tile}', 'images',
                                 name + '.jpg')
            out_mask = osp.join(out_dir, f'Tile {tile}', 'masks',
                                name + '.png')
            for path in (out_image, out_mask):
                os.makedirs(osp.dirname(path), exist_ok=True)
            Image.fromarray(small_image).save(out_image,
                                              quality=jpeg_quality)
            Image.fromarray(small_mask).save(out_mask, optimize=True)
            # verify what is on disk, not what was meant to be written
            check_mask_colours(read_rgb(out_mask), out_mask)
            record = dict(tile=tile, name=name,
                          size=(image.shape[1], image.shape[0]),
                          new_size=(small_image.shape[1],
                                    small_image.shape[0]),
                          bytes=osp.getsize(out_image) +
                          osp.getsize(out_mask))
            records.append(record)
            if log is not None:
                log(f'Tile {tile}/{name}: {record["size"][0]}x'
                    f'{record["size"][1]} -> {record["new_size"][0]}x'
                    f'{record["new_size"][1]}, {record["bytes"] / 1e3:.0f} kB')
    if log is not None:
        log(f'{len(records)} images, {_folder_size(out_dir) / 1e6:.2f} MB '
            f'in {out_dir}')
    return records
