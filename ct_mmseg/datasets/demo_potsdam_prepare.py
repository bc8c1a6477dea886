"""Prepare the built-in synthetic Potsdam demo dataset for MMSegmentation.

:func:`prepare`:

1. writes the raw ISPRS-format zips (``2_Ortho_RGB.zip``, ``5_Labels_all.zip``)
   with :func:`ct_mmseg.datasets.demo_potsdam.write_demo_potsdam` into
   ``raw_dir``, unless matching ones are already there;
2. runs MMSeg's own converter, ``tools/dataset_converters/potsdam.py`` as
   shipped inside the installed ``mmseg`` package (``mmseg/.mim/...``, found
   by :func:`ct_mmseg.mmseg_tools.mmseg_tool`), so the demo data goes
   through exactly the same path as the real release; it writes 512x512 PNG
   crops to ``data_root``/``{img_dir,ann_dir}/{train,val}``;
3. checks the number of crops against what the tile counts imply.

It is idempotent: when ``data_root`` already holds the expected crops of the
same demo parameters it does nothing (and says so), unless ``force``.
``tools/prepare_demo_data.py`` is its command line.
"""
import glob
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

from ..mmseg_tools import MMSegToolNotFound, mmseg_tool
from .demo_potsdam import (LABEL_FOLDER, LABEL_ZIP, RGB_FOLDER, RGB_ZIP,
                           tile_ids, write_demo_potsdam)

# MMSeg's converter default; crops are clip x clip px.
CLIP_SIZE = 512
SPLITS = ('train', 'val')
# Written next to the raw zips and into the data root: the parameters the files
# were made with. The converter only globs ``*.zip``, so a JSON file beside
# the zips is harmless.
MANIFEST = 'demo_manifest.json'


class PrepareError(RuntimeError):
    """A step failed; the message says which and why."""


def converter_path():
    """Path of MMSeg's bundled Potsdam converter (mmseg is not imported).

    Raises:
        PrepareError: mmseg is not installed or has no converter.
    """
    try:
        return mmseg_tool(osp.join('dataset_converters', 'potsdam.py'),
                          what='MMSeg Potsdam converter')
    except MMSegToolNotFound as error:
        raise PrepareError(str(error)) from error


def crops_per_tile(tile_size, clip_size=CLIP_SIZE):
    """Number of distinct crops MMSeg's converter writes for one square tile.

    The converter places boxes at multiples of the *clip* size (not of its
    ``--stride_size``) and shifts boxes that cross the edge back inside, where
    they overwrite each other: in effect a non-overlapping grid of
    ``ceil(tile / clip)`` crops per side. Tiles smaller than a clip give none,
    so they are rejected.
    """
    if tile_size < clip_size:
        raise ValueError(f'tile size {tile_size} is smaller than the '
                         f'converter\'s {clip_size} px clip: no crops')
    return math.ceil(tile_size / clip_size)**2


def expected_counts(num_train, num_val, tile_size, clip_size=CLIP_SIZE):
    """Expected number of PNGs per split (same for img_dir and ann_dir)."""
    per_tile = crops_per_tile(tile_size, clip_size)
    return {'train': num_train * per_tile, 'val': num_val * per_tile}


def count_pngs(data_root):
    """``{(kind, split): number of *.png}`` for kind in img_dir, ann_dir."""
    return {(kind, split): len(glob.glob(osp.join(data_root, kind, split,
                                                  '*.png')))
            for kind in ('img_dir', 'ann_dir') for split in SPLITS}


def _read_manifest(folder):
    """The parameters recorded in ``folder``, or None."""
    try:
        with open(osp.join(folder, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_manifest(folder, params):
    """Record the demo ``params`` (dict) in ``folder``."""
    with open(osp.join(folder, MANIFEST), 'w') as f:
        json.dump(params, f, indent=2, sort_keys=True)
        f.write('\n')


def is_prepared(data_root, params):
    """Whether ``data_root`` already holds the converted demo data.

    True when every ``{img_dir,ann_dir}/{train,val}`` folder holds the
    expected number of PNGs and, if a manifest is there, it records the same
    demo parameters (so a different ``--seed`` or tile size triggers a
    rebuild even when the counts happen to agree).
    """
    expected = expected_counts(params['num_train'], params['num_val'],
                               params['tile_size'])
    counts = count_pngs(data_root)
    if any(counts[kind, split] != expected[split] for kind, split in counts):
        return False
    manifest = _read_manifest(data_root)
    return manifest is None or manifest == params


def raw_is_current(raw_dir, params):
    """Whether ``raw_dir`` holds zips made with ``params`` (manifest + names)."""
    if _read_manifest(raw_dir) != params:
        return False
    train_ids, val_ids = tile_ids(params['num_train'], params['num_val'])
    ids = train_ids + val_ids
    wanted = {
        RGB_ZIP: {f'{RGB_FOLDER}/top_potsdam_{t}_RGB.tif' for t in ids},
        LABEL_ZIP:
        {f'{LABEL_FOLDER}/top_potsdam_{t}_label.tif' for t in ids},
    }
    for zip_name, names in wanted.items():
        path = osp.join(raw_dir, zip_name)
        try:
            with zipfile.ZipFile(path) as zf:
                found = {n for n in zf.namelist() if not n.endswith('/')}
        except (OSError, zipfile.BadZipFile):
            return False
        if found != names:
            return False
    return True


def ensure_raw(raw_dir, params, force=False):
    """Write the raw zips unless matching ones exist; return True if written."""
    os.makedirs(raw_dir, exist_ok=True)
    # The converter reads *every* zip in the folder; a stray one (say an IRRG
    # archive) would silently overwrite or add crops.
    ours = {RGB_ZIP, LABEL_ZIP}
    strays = sorted(
        osp.basename(p) for p in glob.glob(osp.join(raw_dir, '*.zip'))
        if osp.basename(p) not in ours)
    if strays:
        raise PrepareError(
            f'{raw_dir} holds other zip files {strays}; MMSeg\'s converter '
            'reads every *.zip in the folder. Use a dedicated --raw-dir.')
    if not force and raw_is_current(raw_dir, params):
        return False
    write_demo_potsdam(raw_dir, params['num_train'], params['num_val'],
                       params['tile_size'], params['seed'])
    _write_manifest(raw_dir, params)
    return True


def run_converter(raw_dir, data_root, clip_size=CLIP_SIZE):
    """Run MMSeg's Potsdam converter as a subprocess; return its output.

    A private temporary folder is passed as ``--tmp_dir``: the converter
    classifies an extracted file as a label when the *whole path* contains
    ``'label'``, so the extraction folder must not contain that word (a
    ``TMPDIR`` such as ``/scratch/labeling`` would turn every RGB tile into a
    "label").
    """
    with tempfile.TemporaryDirectory(prefix='potsdam_convert_') as tmp_dir:
        if 'label' in tmp_dir:
            raise PrepareError(
                f'temporary folder {tmp_dir} contains "label", which would '
                'make the converter read RGB tiles as labels; set TMPDIR')
        cmd = [
            sys.executable, converter_path(),
            osp.abspath(raw_dir), '-o', osp.abspath(data_root),
            '--tmp_dir', tmp_dir, '--clip_size', str(clip_size)
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = '\n'.join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise PrepareError(f'MMSeg converter failed (exit {proc.returncode}):'
                           f'\n  {" ".join(cmd)}\n{tail}')
    return proc.stdout


def _checked_counts(num_train, num_val, tile_size, seed):
    """:func:`expected_counts` of valid demo parameters.

    Raises:
        PrepareError: a count, the tile size or the seed is out of range.
    """
    try:
        expected = expected_counts(num_train, num_val, tile_size)
        tile_ids(num_train, num_val)  # validates the counts
        if seed < 0:
            raise ValueError(f'seed must be non-negative, got {seed}')
    except ValueError as exc:
        raise PrepareError(str(exc)) from exc
    return expected


def _clear_output(data_root, log):
    """Remove old crops and manifest: stale crops from an earlier run with
    other parameters would survive the converter (it only adds/overwrites
    files), so it starts from empty folders."""
    for kind in ('img_dir', 'ann_dir'):
        if osp.isdir(osp.join(data_root, kind)):
            shutil.rmtree(osp.join(data_root, kind))
            log(f'removed old {osp.join(data_root, kind)}')
    manifest_path = osp.join(data_root, MANIFEST)
    if osp.exists(manifest_path):
        os.remove(manifest_path)


def _check_output(data_root, expected):
    """Raise :class:`PrepareError` unless every folder holds ``expected``
    ``{split: PNG count}`` crops."""
    counts = count_pngs(data_root)
    wrong = {f'{kind}/{split}': (n, expected[split])
             for (kind, split), n in counts.items() if n != expected[split]}
    if wrong:
        raise PrepareError('converter output has unexpected file counts '
                           f'(found, expected): {wrong}')


def prepare(data_root='data/potsdam_demo', raw_dir='data/potsdam_demo_raw',
            num_train=4, num_val=2, tile_size=1024, seed=0, force=False,
            log=print):
    """Make sure ``data_root`` holds the converted demo dataset.

    Args:
        data_root (str): Output of the converter (MMSeg ``data_root``).
        raw_dir (str): Folder for the raw ISPRS-format zips.
        num_train, num_val, tile_size, seed: Demo parameters, see
            :func:`ct_mmseg.datasets.demo_potsdam.write_demo_potsdam`.
        force (bool): Regenerate the zips and reconvert even if up to date.
        log (callable): Receives progress messages.

    Returns:
        str: ``'skipped'`` if everything was already in place, else
        ``'converted'``.

    Raises:
        PrepareError: If a step fails or the output is not what was expected.
    """
    params = dict(num_train=num_train, num_val=num_val, tile_size=tile_size,
                  seed=seed, clip_size=CLIP_SIZE)
    expected = _checked_counts(num_train, num_val, tile_size, seed)
    if not force and is_prepared(data_root, params):
        log(f'{data_root} is already prepared ({expected["train"]} train / '
            f'{expected["val"]} val crops); nothing to do (--force rebuilds)')
        return 'skipped'

    start = time.perf_counter()
    if ensure_raw(raw_dir, params, force=force):
        log(f'wrote raw zips to {raw_dir} ({num_train} train + {num_val} val '
            f'tiles of {tile_size} px, seed {seed}) '
            f'in {time.perf_counter() - start:.1f} s')
    else:
        log(f'reusing raw zips in {raw_dir}')
    _clear_output(data_root, log)

    start = time.perf_counter()
    run_converter(raw_dir, data_root)
    _check_output(data_root, expected)
    _write_manifest(data_root, params)
    log(f'converted with MMSeg\'s potsdam.py into {data_root} in '
        f'{time.perf_counter() - start:.1f} s: {expected["train"]} train / '
        f'{expected["val"]} val crops of {CLIP_SIZE} px')
    return 'converted'
