"""Inputs and tables of the patch-level probes of frozen ViT tokens
(``tools/probe_tokens.py``): the labelled Dubai tiles, and one Markdown
table per metric (rows: runs, columns: layers) of the rows that
:func:`ct_mmseg.adclr.knn_eval.knn_and_linear_eval` returns."""
from typing import List, Sequence

from ..datasets.dubai_aerial import colour_mask_to_labels, find_pairs, read_rgb

METRICS = ('knn_miou', 'knn_acc', 'linear_miou', 'linear_acc')


class NoTilesError(FileNotFoundError):
    """No image of the requested tiles under the dataset root."""


def load_tiles(root, tiles):
    """(RGB image (H, W, 3) uint8, labels (H, W)) of every image of the
    Dubai ``tiles`` (tile numbers) under ``root``.

    Raises:
        NoTilesError: no image of those tiles.
    """
    pairs = [p for p in find_pairs(root) if p.tile in tiles]
    if not pairs:
        raise NoTilesError(f'no images of tiles {tiles} under {root}')
    return [(read_rgb(p.image_path),
             colour_mask_to_labels(read_rgb(p.mask_path))) for p in pairs]


def metric_tables(rows: Sequence[dict], runs: Sequence[str]) -> List[str]:
    """The printed tables, as lines: per metric a header line
    (``'\\n<metric> (%) | layer 0 | ...'``), a rule and one line per run.

    Args:
        rows (list[dict]): per run and layer, ``run``, ``layer`` and the
            :data:`METRICS`.
        runs (list[str]): the run names, in table order.
    """
    layers = sorted({row['layer'] for row in rows})
    lines = []
    for metric in METRICS:
        lines.append(f'\n{metric} (%) | ' +
                     ' | '.join(f'layer {i}' for i in layers))
        lines.append('|'.join(['---'] * (len(layers) + 1)))
        for name in runs:
            values = [row[metric] for row in rows if row['run'] == name]
            lines.append(f'{name} | ' + ' | '.join(f'{v:.1f}' for v in values))
    return lines
