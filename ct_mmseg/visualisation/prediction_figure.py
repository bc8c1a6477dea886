"""The picture a person looks at first: image | ground truth | prediction.

:func:`draw_prediction_figure` reads held-out images, their ground-truth
label PNGs and the predicted label PNGs that MMSeg's ``tools/test.py --out``
writes, and draws one PNG: a row per crop window (image, ground truth and
prediction side by side, in the dataset's class colours), a legend with the
class names, and the per-class IoU over *all* pixels of the given images.
The IoU table also goes to a markdown file. ``tools/show_predictions.py`` is
its command line; ``tools/run_demo.sh`` calls it.

Plain numpy + matplotlib (Agg); every function checks its inputs and names
the file or argument at fault. Shapes: H x W pixels, K classes.
"""
import os
import os.path as osp
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

IGNORE_INDEX = 255
IGNORE_COLOUR = (0, 0, 0)  # ignored ground-truth pixels are drawn black
Window = Tuple[int, int, int, int]  # x0, y0, x1, y1 (end exclusive)
Windows = Sequence[Sequence[Window]]  # per image, its windows


def _check_palette(class_names: Sequence[str], palette) -> np.ndarray:
    """(K, 3) uint8 palette, checked against the K class names."""
    colours = np.asarray(palette)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f'palette must be K x 3 RGB values, got shape '
                         f'{colours.shape}')
    if len(colours) != len(class_names):
        raise ValueError(f'palette has {len(colours)} colours for '
                         f'{len(class_names)} class_names')
    if colours.min() < 0 or colours.max() > 255:
        raise ValueError('palette values must be in [0, 255]')
    return colours.astype(np.uint8)


def colourise(labels: np.ndarray, palette, ignore_index: int = IGNORE_INDEX,
              ignore_colour=IGNORE_COLOUR, where: str = 'labels'
              ) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB.

    Class ``k`` gets ``palette[k]`` (``palette``: (K, 3)), ``ignore_index``
    gets ``ignore_colour``; any other value raises ValueError naming
    ``where``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f'{where}: labels must be (H, W), got shape '
                         f'{labels.shape}')
    colours = np.asarray(palette, np.uint8).reshape(-1, 3)
    table = np.zeros((256, 3), np.uint8)
    table[:len(colours)] = colours
    known = np.zeros(256, bool)
    known[:len(colours)] = True
    if 0 <= ignore_index <= 255:
        table[ignore_index] = ignore_colour
        known[ignore_index] = True
    values = np.unique(labels)
    bad = values[(values < 0) | (values > 255)]
    if bad.size == 0:
        bad = values[~known[values.astype(np.int64)]]
    if bad.size:
        raise ValueError(f'{where}: label values {bad[:5].tolist()} are '
                         f'neither a class (0..{len(colours) - 1}) nor '
                         f'ignore_index {ignore_index}')
    return table[labels.astype(np.int64)]


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'image {path} does not exist')
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


def read_labels(path: str, what: str = 'label') -> np.ndarray:
    """(H, W) uint8 class indices of a single-channel label PNG (mode L or
    P, as MMSeg writes them). ``what`` names the file's role in errors."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file {path} does not exist')
    with Image.open(path) as image:
        if image.mode not in ('L', 'P'):
            raise ValueError(f'{what} file {path} has mode {image.mode}; '
                             'expected a single-channel label PNG (class '
                             'indices), not a colour mask')
        return np.asarray(image)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(K, K) int64 pixel counts, ``[true class, predicted class]``, over
    the pixels of (H, W) ``gt`` that are not ``ignore_index``."""
    gt, pred = np.asarray(gt), np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f'gt {gt.shape} and pred {pred.shape} differ')
    keep = gt != ignore_index
    g = gt[keep].astype(np.int64)
    p = pred[keep].astype(np.int64)
    if g.size and (g.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f'labels >= num_classes {num_classes}')
    return np.bincount(g * num_classes + p, minlength=num_classes**2) \
        .reshape(num_classes, num_classes)


def iou_from_confusion(confusion: np.ndarray) -> Dict[str, object]:
    """Per-class IoU (MMSeg's definition) from a (K, K) confusion matrix.

    Returns ``iou`` (K,) float (nan where a class is neither labelled nor
    predicted), ``mIoU`` (nan-mean), ``aAcc`` (correct / labelled),
    ``label`` and ``prediction`` (K,) pixel counts.
    """
    confusion = np.asarray(confusion, np.float64)
    intersection = np.diag(confusion)
    label = confusion.sum(1)
    prediction = confusion.sum(0)
    union = label + prediction - intersection
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, intersection / union, np.nan)
    finite = iou[np.isfinite(iou)]
    total = confusion.sum()
    return dict(iou=iou, mIoU=float(finite.mean()) if finite.size else
                float('nan'), aAcc=float(intersection.sum() / total)
                if total else float('nan'), label=label.astype(np.int64),
                prediction=prediction.astype(np.int64))


def iou_markdown(class_names: Sequence[str], scores: Dict[str, object]
                 ) -> str:
    """Markdown table of :func:`iou_from_confusion`'s ``scores``: IoU in
    percent with the labelled and predicted pixels per class, then mIoU and
    aAcc."""
    lines = ['| class | IoU (%) | labelled pixels | predicted pixels |',
             '|---|---|---|---|']
    for k, name in enumerate(class_names):
        iou = scores['iou'][k]
        shown = 'n/a' if not np.isfinite(iou) else f'{100 * iou:.1f}'
        lines.append(f'| {name} | {shown} | {scores["label"][k]:,} | '
                     f'{scores["prediction"][k]:,} |')
    lines.append(f'| **mean (mIoU)** | **{100 * scores["mIoU"]:.1f}** | | |')
    lines.append(f'| pixel accuracy (aAcc) | {100 * scores["aAcc"]:.1f} '
                 '| | |')
    return '\n'.join(lines) + '\n'


def pick_windows(gt: np.ndarray, size: int, num: int,
                 ignore_index: int = IGNORE_INDEX) -> List[Window]:
    """``num`` non-overlapping ``size`` x ``size`` windows of the (H, W)
    ground truth that show the most classes (each counted if it covers at
    least 2 % of the window; ties: the more even class mix). Deterministic.
    An image smaller than ``size`` gives one window: the whole image."""
    gt = np.asarray(gt)
    height, width = gt.shape
    if size < 1 or num < 1:
        raise ValueError(f'size ({size}) and num ({num}) must be >= 1')
    if height <= size and width <= size:
        return [(0, 0, width, height)]
    scored = []
    for y0 in range(0, max(height - size, 0) + 1, size):
        for x0 in range(0, max(width - size, 0) + 1, size):
            crop = gt[y0:y0 + size, x0:x0 + size]
            counts = np.bincount(crop[crop != ignore_index].ravel(),
                                 minlength=1).astype(np.float64)
            shares = counts / max(crop.size, 1)
            present = int((shares >= 0.02).sum())
            nonzero = shares[shares > 0]
            entropy = float(-(nonzero * np.log(nonzero)).sum())
            scored.append((-present, -entropy, y0, x0))
    scored.sort()
    return [(x0, y0, min(x0 + size, width), min(y0 + size, height))
            for _, _, y0, x0 in scored[:num]]


def _short_name(path: str) -> str:
    """File stem without the box a converter appended to it
    (``tile8_image_part_005_0_0_1074_740.png`` -> ``tile8_image_part_005``)."""
    return re.sub(r'(_\d+){4}$', '', osp.splitext(osp.basename(path))[0])


def _check_lists(image_paths, gt_paths, pred_paths):
    lengths = dict(image_paths=len(image_paths), gt_paths=len(gt_paths),
                   pred_paths=len(pred_paths))
    if len(set(lengths.values())) != 1:
        raise ValueError(f'image_paths, gt_paths and pred_paths must be '
                         f'of the same length, got {lengths}')
    if not image_paths:
        raise ValueError('image_paths is empty: nothing to draw')


class Row(NamedTuple):
    """One crop window of one image: what a figure row shows."""
    label: str  # e.g. 'tile8_image_part_005\nx 0-256, y 0-256'
    image: np.ndarray  # (h, w, 3) uint8, the image crop
    gt: np.ndarray  # (h, w, 3) uint8, ground truth in class colours
    pred: np.ndarray  # (h, w, 3) uint8, prediction in class colours


def load_rows(image_paths: Sequence[str],
              gt_paths: Sequence[str],
              pred_paths: Sequence[str],
              class_names: Sequence[str],
              palette,
              crop_size: int = 256,
              crops_per_image: int = 2,
              windows: Optional[Windows] = None,
              ignore_index: int = IGNORE_INDEX
              ) -> Tuple[List[Row], Dict[str, object], List[List[Window]]]:
    """Read N images with their ground truth and prediction, score them and
    cut the crop windows.

    Args: as :func:`draw_prediction_figure`.

    Returns:
        tuple: the rows (:class:`Row`, image by image, window by window),
        the scores of :func:`iou_from_confusion` over *all* pixels of the N
        images, and the windows used per image.
    """
    _check_lists(image_paths, gt_paths, pred_paths)
    colours = _check_palette(class_names, palette)
    num_classes = len(class_names)
    if windows is not None and len(windows) != len(image_paths):
        raise ValueError(f'windows has {len(windows)} entries for '
                         f'{len(image_paths)} image_paths')
    confusion = np.zeros((num_classes, num_classes), np.int64)
    rows, chosen = [], []
    for i, (image_path, gt_path, pred_path) in enumerate(
            zip(image_paths, gt_paths, pred_paths)):
        image = read_image(image_path)
        gt = read_labels(gt_path, 'ground-truth')
        pred = read_labels(pred_path, 'prediction')
        if not image.shape[:2] == gt.shape == pred.shape:
            raise ValueError(
                f'sizes differ: image {image_path} {image.shape[:2]}, '
                f'ground truth {gt_path} {gt.shape}, prediction '
                f'{pred_path} {pred.shape}')
        gt_rgb = colourise(gt, colours, ignore_index, where=gt_path)
        if (pred == ignore_index).any():
            raise ValueError(f'prediction {pred_path} holds ignore_index '
                             f'{ignore_index}: a prediction labels every '
                             'pixel with a class')
        pred_rgb = colourise(pred, colours, ignore_index, where=pred_path)
        confusion += confusion_matrix(gt, pred, num_classes, ignore_index)
        boxes = pick_windows(gt, crop_size, crops_per_image, ignore_index) \
            if windows is None else [tuple(int(v) for v in w)
                                     for w in windows[i]]
        for x0, y0, x1, y1 in boxes:
            if not (0 <= x0 < x1 <= gt.shape[1] and
                    0 <= y0 < y1 <= gt.shape[0]):
                raise ValueError(f'window {(x0, y0, x1, y1)} is outside '
                                 f'{image_path} ({gt.shape[1]} x '
                                 f'{gt.shape[0]})')
            crop = np.s_[y0:y1, x0:x1]
            rows.append(Row(f'{_short_name(image_path)}\n'
                            f'x {x0}-{x1}, y {y0}-{y1}', image[crop],
                            gt_rgb[crop], pred_rgb[crop]))
        chosen.append(boxes)
    return rows, iou_from_confusion(confusion), chosen


def render_figure(rows: Sequence[Row], class_names: Sequence[str], palette,
                  scores: Dict[str, object], title: Optional[str] = None,
                  ignore_index: int = IGNORE_INDEX, dpi: int = 100,
                  num_images: Optional[int] = None):
    """The matplotlib Figure: a row per :class:`Row` (image | ground truth
    | prediction), the legend (K classes + the ignored colour) and the IoU
    table, under ``title`` and the mIoU (over ``num_images`` images, if
    given). The caller saves and closes it."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = _check_palette(class_names, palette)
    num_classes = len(class_names)
    if not rows:
        raise ValueError('rows is empty: no crop window to draw')
    panel = max(max(r.image.shape[:2]) for r in rows) / dpi
    table_height = 0.3 * (num_classes + 3)
    height = len(rows) * (panel + 0.3) + table_height + 1.9
    fig = plt.figure(figsize=(3 * panel + 1.2, height), dpi=dpi)
    grid = fig.add_gridspec(len(rows) + 1, 3, height_ratios=[panel] *
                            len(rows) + [table_height + 0.9],
                            hspace=0.25, wspace=0.04, left=0.1, right=0.99,
                            top=1 - 1.1 / height, bottom=0.01)
    for r, row in enumerate(rows):
        for c, (content, heading) in enumerate(zip(
                (row.image, row.gt, row.pred),
                ('image', 'ground truth', 'prediction'))):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(content, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(heading, fontsize=11)
            if c == 0:
                ax.set_ylabel(row.label, fontsize=7)
    bottom = fig.add_subplot(grid[len(rows), :])
    bottom.axis('off')
    handles = [Patch(facecolor=colours[k] / 255, edgecolor='k', label=name)
               for k, name in enumerate(class_names)]
    handles.append(Patch(facecolor=np.array(IGNORE_COLOUR) / 255,
                         edgecolor='k',
                         label=f'ignored / unlabelled ({ignore_index})'))
    bottom.legend(handles=handles, loc='upper center', ncol=3, fontsize=8,
                  frameon=False, bbox_to_anchor=(0.5, 1.02))
    cells = [[name, 'n/a' if not np.isfinite(scores['iou'][k]) else
              f'{100 * scores["iou"][k]:.1f}', f'{scores["label"][k]:,}']
             for k, name in enumerate(class_names)]
    cells.append(['mIoU', f'{100 * scores["mIoU"]:.1f}', ''])
    table = bottom.table(cellText=cells,
                         colLabels=['class', 'IoU (%)', 'labelled px'],
                         cellLoc='center', loc='lower center',
                         bbox=[0.15, 0.0, 0.7, 0.72])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for k in range(num_classes):
        table[k + 1, 0].set_facecolor(colours[k] / 255)
        if colours[k].astype(int).sum() < 300:  # dark colour: white text
            table[k + 1, 0].get_text().set_color('white')
    heading = f'mIoU {100 * scores["mIoU"]:.1f} %' + (
        f' over {num_images} whole image(s); rows: windows of them'
        if num_images else '')
    fig.suptitle(f'{title}\n{heading}' if title else heading, fontsize=10)
    return fig


def draw_prediction_figure(image_paths: Sequence[str],
                           gt_paths: Sequence[str],
                           pred_paths: Sequence[str],
                           class_names: Sequence[str],
                           palette,
                           out_file: str,
                           crop_size: int = 256,
                           crops_per_image: int = 2,
                           windows: Optional[Windows] = None,
                           ignore_index: int = IGNORE_INDEX,
                           title: Optional[str] = None,
                           dpi: int = 100) -> Dict[str, object]:
    """Write the image | ground truth | prediction figure and its IoU table.

    Args:
        image_paths (list[str]): N images (any PIL-readable RGB file).
        gt_paths (list[str]): N ground-truth label PNGs, (H, W) class
            indices of the same size as the image; ``ignore_index`` where
            unlabelled.
        pred_paths (list[str]): N predicted label PNGs, (H, W) class
            indices (MMSeg's ``tools/test.py --out`` writes them).
        class_names (list[str]): the K class names.
        palette: (K, 3) RGB colours of the classes.
        out_file (str): the PNG to write; the IoU table goes to
            ``<out_file without .png>_iou.md``.
        crop_size (int): side of the crop windows shown.
        crops_per_image (int): windows per image, chosen by
            :func:`pick_windows` unless ``windows`` is given.
        windows (list[list[tuple]]): per image, the ``(x0, y0, x1, y1)``
            windows to show.
        ignore_index (int): unlabelled ground truth, drawn black.
        title (str): figure title (the mIoU is appended).
        dpi (int): resolution; at 100 a 256 px crop is drawn at its size.

    Returns:
        dict: ``scores`` (see :func:`iou_from_confusion`, over all pixels of
        the N images), ``windows`` (per image), ``markdown`` (the table),
        ``figure`` and ``table_file`` (paths written).
    """
    import matplotlib.pyplot as plt

    rows, scores, chosen = load_rows(
        image_paths, gt_paths, pred_paths, class_names, palette, crop_size,
        crops_per_image, windows, ignore_index)
    markdown = iou_markdown(class_names, scores)
    fig = render_figure(rows, class_names, palette, scores, title,
                        ignore_index, dpi, num_images=len(image_paths))
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    try:
        fig.savefig(out_file, dpi=dpi, bbox_inches='tight')
    finally:
        plt.close(fig)
    table_file = osp.splitext(out_file)[0] + '_iou.md'
    with open(table_file, 'w') as f:
        f.write(markdown)
    return dict(scores=scores, windows=chosen, markdown=markdown,
                figure=out_file, table_file=table_file)
