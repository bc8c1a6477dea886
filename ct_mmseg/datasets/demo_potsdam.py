"""A small, deterministic synthetic dataset in the raw ISPRS Potsdam format.

:func:`write_demo_potsdam` writes the two archives MMSeg's Potsdam converter
(``tools/dataset_converters/potsdam.py``) reads:

* ``2_Ortho_RGB.zip`` with ``2_Ortho_RGB/top_potsdam_{i}_{j}_RGB.tif``
  (RGB uint8 TIFF tiles), and
* ``5_Labels_all.zip`` with ``5_Labels_all/top_potsdam_{i}_{j}_label.tif``
  (colour-coded RGB label TIFF tiles, ISPRS colours, thin black boundaries).

The scenes (:func:`make_tile`) are synthetic but learnable: every class has
its own base colour in the RGB image (plus texture and noise), so a
segmentation network can fit them in a few hundred iterations. Everything is
a pure function of ``seed`` and the tile id, and the archives are written
with fixed zip metadata, so the same arguments give byte-identical files.

Plain numpy and PIL; ``tools/make_demo_potsdam.py`` is the command line,
:mod:`ct_mmseg.datasets.demo_potsdam_prepare` runs MMSeg's converter on it.
"""
import io
import os
import os.path as osp
import zipfile

import numpy as np
from PIL import Image

# Archive and folder names of the real ISPRS Potsdam release.
RGB_ZIP = '2_Ortho_RGB.zip'
LABEL_ZIP = '5_Labels_all.zip'
RGB_FOLDER = '2_Ortho_RGB'
LABEL_FOLDER = '5_Labels_all'

# MMSeg's converter hard-codes these 24 ids as the train split; every other id
# is sent to val. Listed row by row so that "the first N" are spatial neighbours.
TRAIN_IDS = ('2_10', '2_11', '2_12', '3_10', '3_11', '3_12', '4_10', '4_11',
             '4_12', '5_10', '5_11', '5_12', '6_7', '6_8', '6_9', '6_10',
             '6_11', '6_12', '7_7', '7_8', '7_9', '7_10', '7_11', '7_12')
# The 14 standard ISPRS test tiles (MMSeg's val split).
VAL_IDS = ('2_13', '2_14', '3_13', '3_14', '4_13', '4_14', '4_15', '5_13',
           '5_14', '5_15', '6_13', '6_14', '6_15', '7_13')

# Class indices used while drawing (the ISPRS order, as in PotsdamDataset).
IMPERVIOUS, BUILDING, LOW_VEG, TREE, CAR, CLUTTER = range(6)
NUM_CLASSES = 6
# ISPRS label colours (RGB), indexed by class.
ISPRS_COLOURS = np.array(
    [
        [255, 255, 255],  # impervious surfaces
        [0, 0, 255],  # building
        [0, 255, 255],  # low vegetation
        [0, 255, 0],  # tree
        [255, 255, 0],  # car
        [255, 0, 0],  # clutter / background
    ],
    dtype=np.uint8)
BOUNDARY_COLOUR = np.array([0, 0, 0], dtype=np.uint8)  # ignored after conversion

# Base colours of the synthetic orthophoto, one per class. They are far apart
# so that the task is easy, but overlapping noise keeps it from being a lookup.
_BASE_RGB = np.array(
    [
        [128, 128, 124],  # impervious: grey asphalt
        [178, 104, 82],  # building: terracotta roofs
        [132, 178, 96],  # low vegetation: light green grass
        [44, 96, 46],  # tree: dark green crowns
        [40, 56, 170],  # car: (overridden per car from _CAR_RGB)
        [196, 70, 168],  # clutter: magenta-ish odds and ends
    ],
    dtype=np.float32)
_CAR_RGB = np.array(
    [[40, 56, 170], [28, 30, 36], [200, 200, 40], [212, 212, 218]],
    dtype=np.float32)

# Fixed zip metadata: the zip format stores a local timestamp per entry, which
# would otherwise make the archives differ from one run to the next.
ZIP_DATE_TIME = (2020, 1, 1, 0, 0, 0)


def tile_ids(num_train=4, num_val=2):
    """Return ``(train_ids, val_ids)``: the first ``num_train`` / ``num_val`` ids.

    Args:
        num_train (int): Number of train tiles, 0..24 (ids from ``TRAIN_IDS``).
        num_val (int): Number of val tiles, 0..14 (ids from ``VAL_IDS``).

    Returns:
        tuple[list[str], list[str]]: Tile ids such as ``'2_10'``.
    """
    if not 0 <= num_train <= len(TRAIN_IDS):
        raise ValueError(f'num_train must be in [0, {len(TRAIN_IDS)}], '
                         f'got {num_train}')
    if not 0 <= num_val <= len(VAL_IDS):
        raise ValueError(f'num_val must be in [0, {len(VAL_IDS)}], got {num_val}')
    return list(TRAIN_IDS[:num_train]), list(VAL_IDS[:num_val])


def _cell_coords(size, cell):
    """Broadcastable per-pixel cell indices and in-cell offsets.

    The tile is split into square cells of ``cell`` px; each cell holds at most
    one object of a layer, so an object's parameters live in ``(n, n)`` arrays
    and are gathered per pixel with ``param[cy, cx]``: fully vectorised.

    Returns:
        tuple: ``n`` (cells per side), ``cy`` (size, 1), ``cx`` (1, size),
        ``ly`` (size, 1), ``lx`` (1, size).
    """
    n = -(-size // cell)
    pos = np.arange(size)
    return (n, (pos // cell)[:, None], (pos // cell)[None, :],
            (pos % cell)[:, None], (pos % cell)[None, :])


def _place_boxes(rng, size, cell, present, h, w):
    """Draw in-cell offsets for boxes of size ``h x w`` and rasterise them.

    Boxes crossing the tile edge (only possible when ``size % cell != 0``) are
    dropped rather than clipped, so every object keeps its intended size.

    Args:
        rng (numpy.random.Generator): Source of randomness (consumed).
        size (int): Tile side in px.
        cell (int): Cell side in px; ``h`` and ``w`` must be <= ``cell``.
        present (np.ndarray): (n, n) bool, which cells hold a box.
        h, w (np.ndarray): (n, n) int box sizes.

    Returns:
        tuple: ``mask`` (size, size) bool; ``present`` (n, n) bool after the
        edge check; in-cell top-left offsets ``oy``, ``ox`` (n, n); and the
        coordinate arrays ``(cy, cx, ly, lx)`` of :func:`_cell_coords`.
    """
    n, cy, cx, ly, lx = _cell_coords(size, cell)
    oy = rng.integers(0, cell - h + 1)
    ox = rng.integers(0, cell - w + 1)
    present = (present & (_origins(n, cell)[:, None] + oy + h <= size)
               & (_origins(n, cell)[None, :] + ox + w <= size))
    mask = (present[cy, cx] & (ly >= oy[cy, cx]) & (ly < (oy + h)[cy, cx])
            & (lx >= ox[cy, cx]) & (lx < (ox + w)[cy, cx]))
    return mask, present, oy, ox, (cy, cx, ly, lx)


def _origins(n, cell):
    """Absolute pixel coordinate of the first pixel of each of ``n`` cells."""
    return np.arange(n) * cell


def _place_disks(rng, size, cell, prob, r_min, r_max):
    """Rasterise at most one disk per cell (radius in ``[r_min, r_max]``).

    Returns:
        tuple: ``mask`` (size, size) bool and ``dist`` (size, size) float32,
        the distance to the disk centre divided by its radius (for shading).
    """
    n, cy, cx, ly, lx = _cell_coords(size, cell)
    present = rng.random((n, n)) < prob
    r = rng.integers(r_min, r_max + 1, (n, n))
    # Centres keep the disk inside its cell: no clipped half-disks.
    oy = rng.integers(r, cell - r + 1)
    ox = rng.integers(r, cell - r + 1)
    edge_ok = ((_origins(n, cell)[:, None] + oy + r <= size)
               & (_origins(n, cell)[None, :] + ox + r <= size))
    present &= edge_ok
    rr = r[cy, cx].astype(np.float32)
    dist = np.hypot(ly - oy[cy, cx], lx - ox[cy, cx]).astype(np.float32) / rr
    return present[cy, cx] & (dist <= 1.0), dist


def _smooth_field(rng, size, num_waves, wavelength):
    """A smooth random field in roughly [-1, 1]: a sum of random plane waves."""
    pos = np.arange(size, dtype=np.float32)
    field = np.zeros((size, size), np.float32)
    for _ in range(num_waves):  # a handful of waves, each vectorised
        theta = rng.uniform(0, np.pi)
        lam = rng.uniform(*wavelength)
        phase = rng.uniform(0, 2 * np.pi)
        k = np.float32(2 * np.pi / lam)
        field += np.cos(k * (np.cos(theta) * pos[None, :]
                             + np.sin(theta) * pos[:, None]) + phase)
    return field / np.float32(np.sqrt(num_waves / 2))


def _box_all_of(mask, y0, x0, h, w):
    """For each box, whether ``mask`` is True on every pixel it covers.

    Uses a summed-area table, so the check costs O(1) per box. Boxes must lie
    inside the image (``_place_boxes`` guarantees it for present boxes; the
    indices of absent ones are clipped and their answer is irrelevant).
    """
    size = mask.shape[0]
    sat = np.zeros((size + 1, size + 1), np.int64)
    sat[1:, 1:] = mask.cumsum(0).cumsum(1)
    y1 = np.minimum(y0 + h, size)
    x1 = np.minimum(x0 + w, size)
    y0 = np.minimum(y0, size)
    x0 = np.minimum(x0, size)
    inside = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
    return inside == h * w


def _low_vegetation(rng, cls, size):
    """Paint low vegetation into ``cls`` (size, size) where a smooth random
    field is above its 75 % quantile; wavelengths of 150-400 px give several
    patches in each 512 px crop."""
    veg_field = _smooth_field(rng, size, num_waves=6, wavelength=(150, 400))
    cls[veg_field > np.quantile(veg_field, 0.75)] = LOW_VEG


def _buildings(rng, cls, size):
    """Paint buildings into ``cls``: rectangles (40-104 px), at most one per
    128 px cell.

    Returns:
        tuple: ``tint`` (size, size, 3) float32, each roof's colour offset,
        and ``shade`` (size, size) bool, the half of a gable roof past its
        ridge (the box's centre line, vertical or horizontal per building).
    """
    cell = 128
    n = -(-size // cell)
    present = rng.random((n, n)) < 0.5
    h = rng.integers(40, 105, (n, n))
    w = rng.integers(40, 105, (n, n))
    mask, _, oy, ox, (cy, cx, ly, lx) = _place_boxes(rng, size, cell,
                                                     present, h, w)
    cls[mask] = BUILDING
    tint = rng.normal(0.0, 14.0, (n, n, 3)).astype(np.float32)
    ridge_vertical = rng.random((n, n)) < 0.5
    shade = np.where(ridge_vertical[cy, cx], lx >= (ox + w // 2)[cy, cx],
                     ly >= (oy + h // 2)[cy, cx])
    return tint[cy, cx], shade


def _trees(rng, cls, size):
    """Paint trees into ``cls``: disks (radius 7-20 px), at most one per
    64 px cell, never over buildings (roofs stay clean rectangles).

    Returns:
        ndarray: (size, size) float32, distance to the crown centre divided
        by its radius.
    """
    mask, dist = _place_disks(rng, size, 64, prob=0.35, r_min=7, r_max=20)
    mask &= cls != BUILDING
    cls[mask] = TREE
    return dist


def _cars(rng, cls, size):
    """Paint cars into ``cls``: ~8x16 px boxes (either orientation), at most
    one per 32 px cell, kept only where the whole box lies on impervious
    surface.

    Returns:
        ndarray: (size, size, 3) float32, each car's paint.
    """
    cell = 32
    n = -(-size // cell)
    present = rng.random((n, n)) < 0.14
    length = rng.integers(14, 19, (n, n))
    width = rng.integers(7, 10, (n, n))
    vertical = rng.random((n, n)) < 0.5
    h = np.where(vertical, length, width)
    w = np.where(vertical, width, length)
    mask, present, oy, ox, (cy, cx, _, _) = _place_boxes(
        rng, size, cell, present, h, w)
    keep = present & _box_all_of(
        cls == IMPERVIOUS, _origins(n, cell)[:, None] + oy,
        _origins(n, cell)[None, :] + ox, h, w)
    mask &= keep[cy, cx]
    cls[mask] = CAR
    paint = rng.integers(0, len(_CAR_RGB), (n, n))
    return _CAR_RGB[paint[cy, cx]]


def _clutter(rng, cls, size):
    """Paint clutter into ``cls``: small boxes (8-24 px) on open ground only
    (impervious surface or low vegetation, never over objects)."""
    cell = 64
    n = -(-size // cell)
    present = rng.random((n, n)) < 0.15
    h = rng.integers(8, 25, (n, n))
    w = rng.integers(8, 25, (n, n))
    mask, _, _, _, _ = _place_boxes(rng, size, cell, present, h, w)
    mask &= (cls == IMPERVIOUS) | (cls == LOW_VEG)
    cls[mask] = CLUTTER


def _render_rgb(rng, cls, roof_tint, roof_shade, crown_dist, car_paint):
    """The orthophoto of the class map ``cls`` (size, size): each class's
    base colour, per-object variation (roof tint and gable shading, crown
    shading, car paint), a smooth illumination field and Gaussian noise.

    Returns:
        ndarray: (size, size, 3) uint8 RGB.
    """
    size = cls.shape[0]
    img = _BASE_RGB[cls]
    is_b = (cls == BUILDING)[..., None]
    img += np.where(is_b, roof_tint, np.float32(0.0))
    img *= np.where(is_b & roof_shade[..., None], np.float32(0.82), 1.0)
    # Crowns are brighter in the middle and darker at the rim.
    is_t = (cls == TREE)[..., None]
    img *= np.where(is_t, 1.15 - 0.35 * np.minimum(crown_dist, 1.0)[..., None],
                    1.0)
    img = np.where((cls == CAR)[..., None], car_paint, img)
    light = 1.0 + 0.06 * _smooth_field(rng, size, num_waves=2,
                                       wavelength=(600, 1200))
    img *= light[..., None]
    img += rng.normal(0.0, 7.0, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _render_label(cls):
    """The ISPRS colour label of ``cls`` (size, size), with a 1 px black
    outline on the inside of every visible building: a pixel is boundary if
    one of its 4-neighbours is not building. Edge padding keeps the tile
    border itself from counting as a boundary.

    Returns:
        ndarray: (size, size, 3) uint8 RGB.
    """
    label_rgb = ISPRS_COLOURS[cls]
    b = np.pad(cls == BUILDING, 1, mode='edge')
    interior = (b[1:-1, 1:-1] & b[:-2, 1:-1] & b[2:, 1:-1] & b[1:-1, :-2]
                & b[1:-1, 2:])
    label_rgb[(cls == BUILDING) & ~interior] = BOUNDARY_COLOUR
    return label_rgb


def make_tile(rng, size=1024):
    """Draw one synthetic Potsdam-like tile.

    Layers, painted in order (later ones cover earlier ones):

    1. impervious surface everywhere;
    2. low vegetation where a smooth random field is high (~25% of the area);
    3. buildings: rectangles (40-104 px), at most one per 128 px cell;
    4. trees: disks (radius 7-20 px), at most one per 64 px cell, never over
       buildings;
    5. cars: ~8x16 px boxes (either orientation), at most one per 32 px cell,
       kept only where they lie entirely on impervious surface; being smaller
       than 32x32 they never fill a coarse 32 px patch on their own;
    6. clutter: small boxes on impervious surface or low vegetation.

    Building outlines are marked black (boundary, ignored after conversion) in
    the label only, like the eroded ISPRS "noBoundary" references. The RGB
    image colours each class with its own base colour, per-object variation
    (roof tint and gable shading, crown shading, car paint), a smooth
    illumination field and Gaussian noise.

    Args:
        rng (numpy.random.Generator): Source of randomness (consumed).
        size (int): Tile side in px (>= 64).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``rgb`` and ``label_rgb``, both
        ``(size, size, 3)`` uint8 RGB.
    """
    if size < 64:
        raise ValueError(f'tile size must be >= 64 px, got {size}')
    cls = np.full((size, size), IMPERVIOUS, np.uint8)
    _low_vegetation(rng, cls, size)
    roof_tint, roof_shade = _buildings(rng, cls, size)
    crown_dist = _trees(rng, cls, size)
    car_paint = _cars(rng, cls, size)
    _clutter(rng, cls, size)
    rgb = _render_rgb(rng, cls, roof_tint, roof_shade, crown_dist, car_paint)
    return rgb, _render_label(cls)


def tile_rng(seed, tile_id):
    """The generator for one tile: a pure function of ``seed`` and the tile id.

    Seeding per tile (rather than drawing tiles from one stream) means a tile's
    content does not depend on how many other tiles are written.
    """
    i, j = (int(v) for v in tile_id.split('_'))
    return np.random.default_rng([seed, i, j])


def _tiff_bytes(array):
    """Encode an RGB uint8 array (H, W, 3) as an (uncompressed) TIFF, like
    the release."""
    buf = io.BytesIO()
    Image.fromarray(array, mode='RGB').save(buf, format='TIFF')
    return buf.getvalue()


def _zip_info(name, is_dir=False):
    """A ZipInfo with fixed metadata so that archives are byte-reproducible."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
    info.create_system = 3  # Unix, whatever the platform
    if is_dir:
        info.external_attr = (0o40755 << 16) | 0x10  # drwxr-xr-x + MS-DOS dir
    else:
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_demo_potsdam(out_dir, num_train=4, num_val=2, tile_size=1024,
                       seed=0):
    """Write ``2_Ortho_RGB.zip`` and ``5_Labels_all.zip`` into ``out_dir``.

    Each archive holds one folder named like the archive with one TIFF per
    tile (``top_potsdam_{i}_{j}_RGB.tif`` / ``top_potsdam_{i}_{j}_label.tif``),
    entries sorted by tile id. The archives are first written as ``*.part``
    and then renamed, so an interrupted run never leaves a truncated zip with
    the final name behind.

    Args:
        out_dir (str): Output folder (created if missing).
        num_train (int): Number of tiles with train ids (see :func:`tile_ids`).
        num_val (int): Number of tiles with val ids.
        tile_size (int): Tile side in px.
        seed (int): Non-negative seed; same arguments give identical bytes.

    Returns:
        list[str]: Paths of the RGB zip and the label zip.
    """
    if seed < 0:
        raise ValueError(f'seed must be non-negative, got {seed}')
    train_ids, val_ids = tile_ids(num_train, num_val)
    ids = train_ids + val_ids
    os.makedirs(out_dir, exist_ok=True)
    rgb_path = osp.join(out_dir, RGB_ZIP)
    label_path = osp.join(out_dir, LABEL_ZIP)
    zip_kw = dict(mode='w', compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    with zipfile.ZipFile(rgb_path + '.part', **zip_kw) as rgb_zip, \
            zipfile.ZipFile(label_path + '.part', **zip_kw) as label_zip:
        rgb_zip.writestr(_zip_info(RGB_FOLDER + '/', is_dir=True), b'')
        label_zip.writestr(_zip_info(LABEL_FOLDER + '/', is_dir=True), b'')
        for tid in ids:
            rgb, label_rgb = make_tile(tile_rng(seed, tid), tile_size)
            rgb_zip.writestr(
                _zip_info(f'{RGB_FOLDER}/top_potsdam_{tid}_RGB.tif'),
                _tiff_bytes(rgb))
            label_zip.writestr(
                _zip_info(f'{LABEL_FOLDER}/top_potsdam_{tid}_label.tif'),
                _tiff_bytes(label_rgb))
    os.replace(rgb_path + '.part', rgb_path)
    os.replace(label_path + '.part', label_path)
    return [rgb_path, label_path]

