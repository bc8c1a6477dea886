"""ct_mmseg.visualisation.prediction_figure and tools/show_predictions.py on
tiny synthetic label maps whose colours, IoU and windows are worked out by
hand.
"""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ct_mmseg.visualisation import prediction_figure as pf
from e2e_utils import REPO

NAMES = ('a', 'b', 'c')
PALETTE = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]

# 4 x 6 ground truth: left half class 0, right half class 1, one ignored
# pixel at (row 0, col 5), class 2 at (row 3, col 0).
GT = np.array([[0, 0, 0, 1, 1, 255],
               [0, 0, 0, 1, 1, 1],
               [0, 0, 0, 1, 1, 1],
               [2, 0, 0, 1, 1, 1]], np.uint8)
# The prediction gets column 2 wrong (1 instead of 0: 4 pixels) and the
# class-2 pixel wrong (0), and predicts 2 under the ignored pixel (not
# scored).
PRED = np.array([[0, 0, 1, 1, 1, 2],
                 [0, 0, 1, 1, 1, 1],
                 [0, 0, 1, 1, 1, 1],
                 [0, 0, 1, 1, 1, 1]], np.uint8)


def write_case(folder, gt=GT, pred=PRED, name='x'):
    image = np.zeros(gt.shape + (3,), np.uint8)
    image[..., 0] = np.arange(gt.shape[1]) * 40  # red ramp along x
    paths = [osp.join(folder, f'{kind}_{name}.png')
             for kind in ('img', 'gt', 'pred')]
    for array, path in zip((image, gt, pred), paths):
        Image.fromarray(array).save(path)
    return paths


def test_colourise_puts_class_and_ignore_colours_where_the_labels_are():
    rgb = pf.colourise(GT, PALETTE)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 0, 0]  # class 0: red
    assert rgb[1, 4].tolist() == [0, 255, 0]  # class 1: green
    assert rgb[3, 0].tolist() == [0, 0, 255]  # class 2: blue
    assert rgb[0, 5].tolist() == [0, 0, 0]  # ignored: black
    grey = pf.colourise(GT, PALETTE, ignore_colour=(128, 128, 128))
    assert grey[0, 5].tolist() == [128, 128, 128]


def test_colourise_rejects_labels_that_are_no_class():
    with pytest.raises(ValueError, match=r'pred\.png: label values \[7\]'):
        pf.colourise(np.array([[0, 7]]), PALETTE, where='pred.png')
    with pytest.raises(ValueError, match='must be \\(H, W\\)'):
        pf.colourise(np.zeros((2, 2, 3), np.uint8), PALETTE)


def test_iou_by_hand():
    confusion = pf.confusion_matrix(GT, PRED, 3)
    # rows: truth, columns: prediction (ignored pixel left out: 23 pixels)
    assert confusion.tolist() == [[7, 4, 0], [0, 11, 0], [1, 0, 0]]
    scores = pf.iou_from_confusion(confusion)
    # IoU = intersection / (labelled + predicted - intersection):
    # class 0: 7 / (11 + 8 - 7); class 1: 11 / (11 + 15 - 11); class 2: 0
    np.testing.assert_allclose(scores['iou'], [7 / 12, 11 / 15, 0.0])
    assert scores['mIoU'] == pytest.approx((7 / 12 + 11 / 15) / 3)
    assert scores['aAcc'] == pytest.approx(18 / 23)
    assert scores['label'].tolist() == [11, 11, 1]
    # a class neither labelled nor predicted has no IoU (nan, left out of
    # the mean, "n/a" in the table)
    empty = pf.iou_from_confusion(np.array([[3, 0], [0, 0]]))
    assert np.isnan(empty['iou'][1]) and empty['mIoU'] == 1.0
    assert '| b | n/a | 0 | 0 |' in pf.iou_markdown(['a', 'b'], empty)


def test_pick_windows_prefers_windows_with_more_classes():
    gt = np.zeros((4, 8), np.uint8)
    gt[:, 6:] = 1  # only the right 4 x 4 window holds two classes
    assert pf.pick_windows(gt, 4, 1) == [(4, 0, 8, 4)]
    assert pf.pick_windows(gt, 4, 2) == [(4, 0, 8, 4), (0, 0, 4, 4)]
    # an image smaller than a window is shown whole
    assert pf.pick_windows(gt, 16, 3) == [(0, 0, 8, 4)]


def test_load_rows_crops_the_windows_in_class_colours(tmp_path):
    paths = write_case(str(tmp_path))
    rows, scores, windows = pf.load_rows(
        *[[p] for p in paths], NAMES, PALETTE, windows=[[(2, 0, 6, 4)]])
    assert windows == [[(2, 0, 6, 4)]]
    (row,) = rows
    assert row.image.shape == row.gt.shape == row.pred.shape == (4, 4, 3)
    assert row.image[0, :, 0].tolist() == [80, 120, 160, 200]  # x = 2..5
    assert row.gt[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 255, 0],
                                  [0, 0, 0]]  # ignored pixel black
    assert row.pred[0].tolist() == [[0, 255, 0], [0, 255, 0], [0, 255, 0],
                                    [0, 0, 255]]
    assert 'x 2-6, y 0-4' in row.label
    np.testing.assert_allclose(scores['iou'], [7 / 12, 11 / 15, 0.0])


def test_figure_has_the_legend_table_and_exact_colours(tmp_path):
    paths = write_case(str(tmp_path))
    rows, scores, _ = pf.load_rows(*[[p] for p in paths], NAMES, PALETTE,
                                   crop_size=4, crops_per_image=1)
    fig = pf.render_figure(rows, NAMES, PALETTE, scores, title='t', dpi=20)
    texts = [t.get_text() for ax in fig.axes
             for t in (ax.get_legend().get_texts() if ax.get_legend()
                       else [])]
    assert texts == ['a', 'b', 'c', 'ignored / unlabelled (255)']
    cells = {c.get_text().get_text() for ax in fig.axes for t in ax.tables
             for c in t.get_celld().values()}
    assert {'a', 'b', 'c', 'mIoU', 'IoU (%)', '58.3', '73.3', '0.0'} <= cells
    import matplotlib.pyplot as plt
    plt.close(fig)

    out = tmp_path / 'fig' / 'demo.png'
    result = pf.draw_prediction_figure(
        *[[p] for p in paths], NAMES, PALETTE, str(out), crop_size=6,
        crops_per_image=1, title='tiny', dpi=40)
    assert result['figure'] == str(out) and out.is_file()
    table = (tmp_path / 'fig' / 'demo_iou.md').read_text()
    assert table == result['markdown']
    assert '| a | 58.3 | 11 | 8 |' in table
    assert f'| **mean (mIoU)** | **{100 * scores["mIoU"]:.1f}** | | |' \
        in table
    # the panels are drawn without interpolation: the exact class colours
    # and the ignore colour are in the written picture
    picture = np.asarray(Image.open(out).convert('RGB')).reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(picture, axis=0)}
    assert {(255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)} <= colours


def test_bad_input_names_the_argument_or_file(tmp_path):
    img, gt, pred = write_case(str(tmp_path))
    out = str(tmp_path / 'f.png')
    with pytest.raises(ValueError, match='same length.*pred_paths'):
        pf.draw_prediction_figure([img], [gt], [], NAMES, PALETTE, out)
    with pytest.raises(ValueError, match='palette has 2 colours for 3 '
                       'class_names'):
        pf.draw_prediction_figure([img], [gt], [pred], NAMES, PALETTE[:2],
                                  out)
    missing = str(tmp_path / 'nope.png')
    with pytest.raises(FileNotFoundError, match='prediction file .*nope'):
        pf.draw_prediction_figure([img], [gt], [missing], NAMES, PALETTE,
                                  out)
    # a colour mask where a label PNG belongs
    colour = str(tmp_path / 'colour.png')
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(colour)
    with pytest.raises(ValueError, match='ground-truth file .*colour.png '
                       'has mode RGB'):
        pf.draw_prediction_figure([img], [colour], [pred], NAMES, PALETTE,
                                  out)
    # sizes that differ
    small = write_case(str(tmp_path), GT[:2], PRED[:2], name='small')[2]
    with pytest.raises(ValueError, match='sizes differ.*pred_small.png'):
        pf.draw_prediction_figure([img], [gt], [small], NAMES, PALETTE, out)
    # a prediction with a class the palette does not have
    bad = write_case(str(tmp_path), GT,
                     np.where(PRED == 2, 5, PRED).astype(np.uint8),
                     name='bad')[2]
    with pytest.raises(ValueError, match='pred_bad.png: label values'):
        pf.draw_prediction_figure([img], [gt], [bad], NAMES, PALETTE, out)
    with pytest.raises(ValueError, match=r'window \(0, 0, 9, 4\) is outside'):
        pf.draw_prediction_figure([img], [gt], [pred], NAMES, PALETTE, out,
                                  windows=[[(0, 0, 9, 4)]])
    assert not osp.exists(out)


def test_cli_checks_against_the_metric_file(tmp_path):
    """tools/show_predictions.py: files matched by name, classes and
    palette from the dataset class, and the IoU checked against
    PerClassIoUMetric's JSON."""
    for kind in ('img', 'ann', 'pred'):
        (tmp_path / kind).mkdir()
    gt = np.where(GT == 2, 4, GT).astype(np.uint8)  # Dubai: 5 classes
    pred = np.where(PRED == 2, 4, PRED).astype(np.uint8)
    image = np.zeros(GT.shape + (3,), np.uint8)
    Image.fromarray(image).save(tmp_path / 'img' / 'tile8_x.png')
    Image.fromarray(gt).save(tmp_path / 'ann' / 'tile8_x.png')
    Image.fromarray(pred).save(tmp_path / 'pred' / 'tile8_x.png')
    iou = {'building': 7 / 12, 'land': 11 / 15, 'road': None,
           'vegetation': None, 'water': 0.0}
    metric = tmp_path / 'per_class_iou.json'
    metric.write_text(json.dumps({'iou': iou}))
    cmd = [sys.executable, osp.join(REPO, 'tools', 'show_predictions.py'),
           str(tmp_path / 'pred'), '--img-dir', str(tmp_path / 'img'),
           '--ann-dir', str(tmp_path / 'ann'), '--out',
           str(tmp_path / 'out.png'), '--crop-size', '4',
           '--metric-file', str(metric)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert '| building | 58.3 |' in done.stdout
    assert 'per-class IoU matches' in done.stdout
    assert (tmp_path / 'out.png').is_file()
    iou['land'] = 0.5
    metric.write_text(json.dumps({'iou': iou}))
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1
    assert 'land: 0.733333 here, 0.500000 there' in done.stderr
