"""Prepare the built-in synthetic Potsdam demo dataset for MMSegmentation.

Steps:

1. write the raw ISPRS-format zips (``2_Ortho_RGB.zip``, ``5_Labels_all.zip``)
   with ``tools/make_demo_potsdam.py`` into ``--raw-dir``, unless matching ones
   are already there;
2. run MMSeg's own converter, ``tools/dataset_converters/potsdam.py`` as
   shipped inside the installed ``mmseg`` package (``mmseg/.mim/...``), so the
   demo data goes through exactly the same path as the real release; it
   writes 512x512 PNG crops to ``--data-root``/``{img_dir,ann_dir}/{train,val}``;
3. check the number of crops against what the tile counts imply.

The script is idempotent: when ``--data-root`` already holds the expected
crops of the same demo parameters it does nothing (and says so), unless
``--force`` is given.

Example::

    python tools/prepare_demo_data.py --data-root data/potsdam_demo \\
        --raw-dir data/potsdam_demo_raw
"""
import argparse
import glob
import importlib.util
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


def _load_generator():
    """Import the sibling ``make_demo_potsdam.py`` (tools/ is no package)."""
    name = 'make_demo_potsdam'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, osp.join(osp.dirname(osp.abspath(__file__)), f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


gen = _load_generator()

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
    """Path of MMSeg's bundled Potsdam converter.

    Located through ``importlib.util.find_spec`` so that finding it does not
    import mmseg (and torch) into this process.
    """
    spec = importlib.util.find_spec('mmseg')
    if spec is None or spec.origin is None:
        raise PrepareError('mmseg is not installed in this environment')
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools',
                    'dataset_converters', 'potsdam.py')
    if not osp.isfile(path):
        raise PrepareError(f'MMSeg Potsdam converter not found at {path}')
    return path


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
    try:
        with open(osp.join(folder, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_manifest(folder, params):
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
    train_ids, val_ids = gen.tile_ids(params['num_train'], params['num_val'])
    ids = train_ids + val_ids
    wanted = {
        gen.RGB_ZIP: {f'{gen.RGB_FOLDER}/top_potsdam_{t}_RGB.tif' for t in ids},
        gen.LABEL_ZIP:
        {f'{gen.LABEL_FOLDER}/top_potsdam_{t}_label.tif' for t in ids},
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
    ours = {gen.RGB_ZIP, gen.LABEL_ZIP}
    strays = sorted(
        osp.basename(p) for p in glob.glob(osp.join(raw_dir, '*.zip'))
        if osp.basename(p) not in ours)
    if strays:
        raise PrepareError(
            f'{raw_dir} holds other zip files {strays}; MMSeg\'s converter '
            'reads every *.zip in the folder. Use a dedicated --raw-dir.')
    if not force and raw_is_current(raw_dir, params):
        return False
    gen.write_demo_potsdam(raw_dir, params['num_train'], params['num_val'],
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


def prepare(data_root='data/potsdam_demo', raw_dir='data/potsdam_demo_raw',
            num_train=4, num_val=2, tile_size=1024, seed=0, force=False,
            log=print):
    """Make sure ``data_root`` holds the converted demo dataset.

    Args:
        data_root (str): Output of the converter (MMSeg ``data_root``).
        raw_dir (str): Folder for the raw ISPRS-format zips.
        num_train, num_val, tile_size, seed: Demo parameters, see
            :func:`make_demo_potsdam.write_demo_potsdam`.
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
    try:
        expected = expected_counts(num_train, num_val, tile_size)
        gen.tile_ids(num_train, num_val)  # validates the counts
        if seed < 0:
            raise ValueError(f'seed must be non-negative, got {seed}')
    except ValueError as exc:
        raise PrepareError(str(exc)) from exc
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

    # Stale crops from an earlier run with other parameters would survive the
    # converter (it only adds/overwrites files), so start from empty folders.
    for kind in ('img_dir', 'ann_dir'):
        if osp.isdir(osp.join(data_root, kind)):
            shutil.rmtree(osp.join(data_root, kind))
            log(f'removed old {osp.join(data_root, kind)}')
    manifest_path = osp.join(data_root, MANIFEST)
    if osp.exists(manifest_path):
        os.remove(manifest_path)

    start = time.perf_counter()
    run_converter(raw_dir, data_root)
    counts = count_pngs(data_root)
    wrong = {f'{kind}/{split}': (n, expected[split])
             for (kind, split), n in counts.items() if n != expected[split]}
    if wrong:
        raise PrepareError('converter output has unexpected file counts '
                           f'(found, expected): {wrong}')
    _write_manifest(data_root, params)
    log(f'converted with MMSeg\'s potsdam.py into {data_root} in '
        f'{time.perf_counter() - start:.1f} s: {expected["train"]} train / '
        f'{expected["val"]} val crops of {CLIP_SIZE} px')
    return 'converted'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate the synthetic Potsdam demo data and convert it '
        'with MMSeg\'s own Potsdam converter.')
    parser.add_argument('--data-root', default='data/potsdam_demo',
                        help='converted dataset (img_dir/, ann_dir/)')
    parser.add_argument('--raw-dir', default='data/potsdam_demo_raw',
                        help='raw ISPRS-format zips (only these two zips)')
    parser.add_argument('--tile-size', type=int, default=1024,
                        help=f'tile side in px, >= {CLIP_SIZE}')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true',
                        help='regenerate and reconvert even if up to date')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        prepare(args.data_root, args.raw_dir, args.num_train, args.num_val,
                args.tile_size, args.seed, args.force)
    except PrepareError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
