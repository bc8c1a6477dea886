"""The Dubai aerial imagery set, from the files users download to MMSeg.

"Semantic segmentation of aerial imagery" (Humans in the Loop with the
Mohammed Bin Rashid Space Centre, CC0) ships as 8 folders ``Tile N`` of JPEG
images (``images/image_part_00K.jpg``) and colour-coded PNG masks
(``masks/image_part_00K.png``, some of them palette PNGs), 509 to 2149 px a
side. This module holds everything the converter
(``tools/dataset_converters/dubai_aerial.py``, a thin CLI) does, as small
numpy/PIL functions the tests call directly:

* :func:`colour_mask_to_labels`: colour mask -> class indices (5 classes;
  unlabeled, black and any other colour -> 255);
* :func:`window_starts` / :func:`crop_windows` / :func:`crop_and_pad`:
  fixed-size crops with overlap, the last one shifted back inside the image,
  images shorter than a crop padded (image 0, mask 255);
* :func:`assign_splits`: whole tiles to train / val / test, so overlapping
  crops of one tile never land in two splits;
* :func:`convert`: all of it, writing MMSeg's ``img_dir/{split}`` and
  ``ann_dir/{split}`` PNG crops.

It also registers :class:`DubaiAerialDataset` (MMSeg ``DATASETS``), which
reads the converted folders. docs/dubai_aerial.md has the numbers.
"""
import os
import os.path as osp
import re
from typing import (Callable, Dict, Iterable, List, NamedTuple, Optional,
                    Sequence, Tuple)

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS
from PIL import Image

# The mask colours as measured on the 72 released masks (the classes.json
# circulating with the set lists other colours and is wrong). Order = class
# index in the converted masks.
CLASSES = ('building', 'land', 'road', 'vegetation', 'water')
CLASS_COLOURS = ('#3C1098', '#8429F6', '#6EC1E4', '#FEDD3A', '#E2A929')
# Colours in the masks that carry no class: both become IGNORE_INDEX, as does
# any colour not in CLASS_COLOURS.
IGNORED_COLOURS = {'unlabeled': '#9B9B9B', 'black': '#000000'}
IGNORE_INDEX = 255
IMAGE_PAD_VALUE = 0  # padded image pixels are black ...
MASK_PAD_VALUE = IGNORE_INDEX  # ... and never scored
# zlib level of the written PNGs: 1 is about 2x faster than PIL's default 6
# and, on these photos, no larger.
PNG_COMPRESS_LEVEL = 1

SPLITS = ('train', 'val', 'test')
# Splits also written as whole images (``<split>_whole``), for evaluation
# that scores every pixel once.
HELD_OUT = ('val', 'test')
# Whole tiles per split, chosen from the per-tile class pixel counts (every
# tile has all five classes; this split keeps each split's class mix closest
# to the whole set's with most pixels in train). See docs/dubai_aerial.md.
DEFAULT_SPLIT = {'train': (1, 4, 5, 6, 7), 'val': (2,), 'test': (3, 8)}
DEFAULT_CLIP_SIZE = 512
DEFAULT_STRIDE_SIZE = 256


def hex_to_rgb(colour: str) -> Tuple[int, int, int]:
    """``'#3C1098'`` -> ``(60, 16, 152)``."""
    if not re.fullmatch(r'#[0-9A-Fa-f]{6}', colour):
        raise ValueError(f'colour {colour!r} is not of the form #RRGGBB')
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


PALETTE = [list(hex_to_rgb(c)) for c in CLASS_COLOURS]


def _check_rgb(rgb: np.ndarray, name: str = 'rgb') -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'{name} must be an (H, W, 3) uint8 array, got '
                         f'shape {rgb.shape} and dtype {rgb.dtype}')
    return rgb


def rgb_to_codes(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int32 ``R << 16 | G << 8 | B``: one integer
    per colour, so colours can be compared and counted as scalars."""
    rgb = _check_rgb(rgb).astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def hex_to_code(colour: str) -> int:
    """``'#3C1098'`` -> ``0x3C1098``, the code :func:`rgb_to_codes` gives."""
    red, green, blue = hex_to_rgb(colour)
    return (red << 16) | (green << 8) | blue


def code_to_hex(code: int) -> str:
    """Inverse of :func:`hex_to_code` (upper-case hex digits)."""
    return f'#{int(code):06X}'


def colour_mask_to_labels(rgb: np.ndarray,
                          colours: Sequence[str] = CLASS_COLOURS,
                          ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Colour mask -> class-index mask.

    Args:
        rgb (np.ndarray): (H, W, 3) uint8 RGB mask (a palette PNG must be
            converted to RGB first, see :func:`read_rgb`).
        colours (Sequence[str]): ``#RRGGBB`` of class 0, 1, ...
        ignore_index (int): label of every other colour.

    Returns:
        np.ndarray: (H, W) uint8 labels.
    """
    codes = rgb_to_codes(rgb)
    class_codes = np.array([hex_to_code(c) for c in colours], np.int32)
    if len(set(class_codes.tolist())) != len(class_codes):
        raise ValueError(f'colours {list(colours)} has duplicates')
    if not len(class_codes) <= ignore_index <= 255:
        raise ValueError(f'ignore_index {ignore_index} must be in '
                         f'[{len(class_codes)}, 255]')
    # One gather for all pixels: a table over every 24-bit colour (16 MB)
    # holding the class index of the class colours and ignore_index
    # elsewhere.
    table = np.full(1 << 24, ignore_index, np.uint8)
    table[class_codes] = np.arange(len(class_codes), dtype=np.uint8)
    return table[codes]


def count_colours(rgb: np.ndarray) -> Dict[str, int]:
    """Pixels per colour of an RGB mask, ``{'#RRGGBB': count}``."""
    codes, counts = np.unique(rgb_to_codes(rgb), return_counts=True)
    return {code_to_hex(c): int(n) for c, n in zip(codes, counts)}


def count_labels(labels: np.ndarray,
                 num_classes: int = len(CLASSES)) -> np.ndarray:
    """Pixels per class of a label mask: (num_classes,) int64. Labels
    >= num_classes (the ignore index) are not counted."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=256)
    return counts[:num_classes]


def window_starts(length: int, clip_size: int, stride_size: int) -> np.ndarray:
    """Starts of the crops along one axis of ``length`` pixels.

    Crops start every ``stride_size`` pixels; the last one is shifted back
    to end exactly at the border (so no crop runs over it and none is
    dropped). An axis shorter than ``clip_size`` gets one crop at 0, to be
    padded (:func:`crop_and_pad`).

    Example: length 1000, clip 512, stride 256 -> [0, 256, 488].
    """
    for name, value in (('length', length), ('clip_size', clip_size),
                        ('stride_size', stride_size)):
        if int(value) != value or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value}')
    if stride_size > clip_size:
        raise ValueError(f'stride_size {stride_size} > clip_size {clip_size} '
                         'would skip pixels between crops')
    last = max(length - clip_size, 0)
    starts = np.arange(0, last, stride_size)
    return np.append(starts, last).astype(np.int64)


def crop_windows(height: int, width: int, clip_size: int,
                 stride_size: int) -> np.ndarray:
    """Crop boxes of an image, row by row: (N, 4) int64 ``x0, y0, x1, y1``
    (end exclusive), clipped to the image; a box narrower than
    ``clip_size`` means the image is, and the crop is padded."""
    ys = window_starts(height, clip_size, stride_size)
    xs = window_starts(width, clip_size, stride_size)
    y0, x0 = (a.ravel() for a in np.meshgrid(ys, xs, indexing='ij'))
    return np.stack([x0, y0, np.minimum(x0 + clip_size, width),
                     np.minimum(y0 + clip_size, height)], axis=1)


def crop_and_pad(array: np.ndarray, window: Sequence[int], clip_size: int,
                 pad_value: int) -> np.ndarray:
    """``array[y0:y1, x0:x1]`` padded at the bottom / right to
    ``clip_size`` x ``clip_size`` with ``pad_value``."""
    x0, y0, x1, y1 = (int(v) for v in window)
    if not (0 <= x0 < x1 <= array.shape[1] and 0 <= y0 < y1 <= array.shape[0]
            and x1 - x0 <= clip_size and y1 - y0 <= clip_size):
        raise ValueError(f'window {tuple(window)} does not fit an array of '
                         f'shape {array.shape} with clip_size {clip_size}')
    crop = array[y0:y1, x0:x1]
    pad = [(0, clip_size - crop.shape[0]), (0, clip_size - crop.shape[1])]
    pad += [(0, 0)] * (array.ndim - 2)
    return np.pad(crop, pad, constant_values=pad_value)


def assign_splits(tiles: Iterable[int],
                  split_tiles: Optional[Dict[str, Sequence[int]]] = None
                  ) -> Dict[int, str]:
    """Tile number -> split, checking that no tile is in two splits and
    every named tile exists.

    Args:
        tiles (Iterable[int]): the tiles found on disk.
        split_tiles (dict): ``{'train': [...], 'val': [...], 'test': [...]}``
            (default :data:`DEFAULT_SPLIT`). Tiles on disk that no split
            names are left out of the converted set.
    """
    split_tiles = DEFAULT_SPLIT if split_tiles is None else split_tiles
    unknown = set(split_tiles) - set(SPLITS)
    if unknown:
        raise ValueError(f'split_tiles has unknown splits {sorted(unknown)}; '
                         f'use {SPLITS}')
    available = set(tiles)
    assignment: Dict[int, str] = {}
    for split in SPLITS:
        for tile in split_tiles.get(split, ()):
            if tile in assignment:
                raise ValueError(f'tile {tile} is in both {split!r} and '
                                 f'{assignment[tile]!r} (--{split}_tiles); '
                                 'a tile must stay in one split so its '
                                 'overlapping crops do not leak')
            if tile not in available:
                raise ValueError(f'{split}_tiles names tile {tile}, but only '
                                 f'tiles {sorted(available)} were found')
            assignment[tile] = split
    return assignment


class Pair(NamedTuple):
    """One released image and its mask."""
    tile: int
    name: str  # e.g. 'image_part_001'
    image_path: str
    mask_path: str


def find_pairs(root: str) -> List[Pair]:
    """Every ``Tile N/images/*.jpg`` with its ``Tile N/masks/*.png``,
    sorted by tile and name."""
    if not osp.isdir(root):
        raise FileNotFoundError(f'dataset_path {root!r} is not a folder')
    pairs = []
    for folder in os.listdir(root):
        match = re.fullmatch(r'Tile (\d+)', folder)
        if not match:
            continue
        images = osp.join(root, folder, 'images')
        for file in sorted(os.listdir(images)):
            name, ext = osp.splitext(file)
            if ext.lower() not in ('.jpg', '.jpeg', '.png'):
                continue
            mask = osp.join(root, folder, 'masks', name + '.png')
            if not osp.isfile(mask):
                raise FileNotFoundError(f'image {osp.join(images, file)} '
                                        f'has no mask {mask}')
            pairs.append(Pair(int(match.group(1)), name,
                              osp.join(images, file), mask))
    if not pairs:
        raise FileNotFoundError(f'no "Tile N/images/*.jpg" under {root!r}')
    return sorted(pairs)


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image or mask file. Palette ('P') masks
    are expanded through their own palette, so they decode like RGB ones."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


def crop_file_name(pair: Pair, window: Sequence[int]) -> str:
    """``tile3_image_part_001_0_0_512_512.png``: tile, source image and the
    box in it, so every crop can be traced to its tile (and split)."""
    x0, y0, x1, y1 = (int(v) for v in window)
    return f'tile{pair.tile}_{pair.name}_{x0}_{y0}_{x1}_{y1}.png'


def tile_of_crop(file_name: str) -> int:
    """Inverse of :func:`crop_file_name` for the tile number."""
    match = re.match(r'tile(\d+)_', osp.basename(file_name))
    if not match:
        raise ValueError(f'{file_name!r} is not a converted Dubai crop')
    return int(match.group(1))


def whole_split(split: str) -> str:
    """Folder of a held-out split's whole images: ``'test'`` ->
    ``'test_whole'``."""
    return f'{split}_whole'


def save_png(array: np.ndarray, path: str):
    Image.fromarray(array).save(path, compress_level=PNG_COMPRESS_LEVEL)


def convert_pair(pair: Pair, out_dir: str, split: str, clip_size: int,
                 stride_size: int, whole: bool = False
                 ) -> Tuple[np.ndarray, int]:
    """Crop one image and its mask into ``out_dir/{img,ann}_dir/<split>``.

    With ``whole``, the uncropped image and mask also go to
    ``out_dir/{img,ann}_dir/<split>_whole`` (:func:`whole_split`), named as
    one crop covering the image: evaluated there, every pixel counts once.

    Returns the (K,) class pixel counts of the whole (uncropped) mask and
    the number of crops.
    """
    image = read_rgb(pair.image_path)
    labels = colour_mask_to_labels(read_rgb(pair.mask_path))
    if image.shape[:2] != labels.shape:
        raise ValueError(f'{pair.image_path} is {image.shape[:2]} but its '
                         f'mask {pair.mask_path} is {labels.shape}')
    if whole:
        name = crop_file_name(pair, (0, 0, labels.shape[1], labels.shape[0]))
        save_png(image, osp.join(out_dir, 'img_dir', whole_split(split), name))
        save_png(labels, osp.join(out_dir, 'ann_dir', whole_split(split),
                                  name))
    img_dir = osp.join(out_dir, 'img_dir', split)
    ann_dir = osp.join(out_dir, 'ann_dir', split)
    windows = crop_windows(*labels.shape, clip_size, stride_size)
    for window in windows:
        name = crop_file_name(pair, window)
        for array, pad_value, folder in (
                (image, IMAGE_PAD_VALUE, img_dir),
                (labels, MASK_PAD_VALUE, ann_dir)):
            save_png(crop_and_pad(array, window, clip_size, pad_value),
                     osp.join(folder, name))
    return count_labels(labels), len(windows)


def convert(root: str,
            out_dir: str,
            split_tiles: Optional[Dict[str, Sequence[int]]] = None,
            clip_size: int = DEFAULT_CLIP_SIZE,
            stride_size: int = DEFAULT_STRIDE_SIZE,
            eval_stride_size: Optional[int] = None,
            progress: Optional[Callable[[Pair], None]] = None) -> Dict:
    """Convert the released folder ``root`` into MMSeg's layout.

    Args:
        root (str): the folder holding ``Tile 1`` ... ``Tile 8``.
        out_dir (str): gets ``img_dir/{train,val,test}`` (RGB PNG) and
            ``ann_dir/{train,val,test}`` (uint8 class-index PNG) crops, and
            the held-out splits' whole images in ``{val,test}_whole``.
        split_tiles (dict): tiles per split, default :data:`DEFAULT_SPLIT`.
        clip_size (int): crop side in pixels.
        stride_size (int): step between train crops (< clip_size: overlap).
        eval_stride_size (int): step between val / test crops; None: the
            clip size, so evaluation crops overlap only where the last crop
            of a row or column is shifted back inside the image and nearly
            every pixel is scored once.
        progress (callable): called with each :class:`Pair` when done.

    Returns:
        dict: ``crops`` {split: number of crops} and ``pixels``
        {tile: (K,) class pixel counts before cropping}.
    """
    eval_stride_size = clip_size if eval_stride_size is None \
        else eval_stride_size
    pairs = find_pairs(root)
    split_of_tile = assign_splits({p.tile for p in pairs}, split_tiles)
    # check the arguments before writing anything
    if int(clip_size) != clip_size or clip_size < 1:
        raise ValueError(f'clip_size must be a positive integer, got '
                         f'{clip_size}')
    for name, stride in (('stride_size', stride_size),
                         ('eval_stride_size', eval_stride_size)):
        if int(stride) != stride or not 1 <= stride <= clip_size:
            raise ValueError(f'{name} must be an integer in [1, clip_size '
                             f'{clip_size}], got {stride}')
    folders = [*SPLITS, *(whole_split(s) for s in HELD_OUT)]
    for split in folders:
        for kind in ('img_dir', 'ann_dir'):
            os.makedirs(osp.join(out_dir, kind, split), exist_ok=True)
    crops = {split: 0 for split in SPLITS}
    pixels: Dict[int, np.ndarray] = {}
    for pair in pairs:
        split = split_of_tile.get(pair.tile)
        if split is None:
            continue
        stride = stride_size if split == 'train' else eval_stride_size
        counts, num_crops = convert_pair(pair, out_dir, split, clip_size,
                                         stride, whole=split in HELD_OUT)
        pixels[pair.tile] = pixels.get(pair.tile, 0) + counts
        crops[split] += num_crops
        if progress is not None:
            progress(pair)
    return dict(crops=crops, pixels=pixels)


@DATASETS.register_module()
class DubaiAerialDataset(BaseSegDataset):
    """The Dubai aerial set as converted by
    ``tools/dataset_converters/dubai_aerial.py``: RGB PNG crops in
    ``img_dir/<split>`` and class-index PNG masks (0-4, 255 ignored) of the
    same name in ``ann_dir/<split>``. The palette is the masks' own colours.
    """
    METAINFO = dict(classes=CLASSES, palette=PALETTE)

    def __init__(self,
                 img_suffix='.png',
                 seg_map_suffix='.png',
                 reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
