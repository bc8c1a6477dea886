"""tools/ct_table.py on synthetic result files with values known by hand."""
import csv
import importlib.util
import json
import math
import os
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool():
    spec = importlib.util.spec_from_file_location(
        'ct_table', osp.join(REPO, 'tools', 'ct_table.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ct_table = load_tool()
CLASSES = list(ct_table.CLASSES)  # MMSeg's Potsdam class names
FIVE = [c for c in CLASSES if c != 'clutter']

# Three seeds. The five counted classes are spread around a per-seed value m
# (offsets sum to 0, so their mean is exactly m); Clutter is c.
SEED_MIOU = [0.70, 0.72, 0.74]
SEED_CLUTTER = [0.30, 0.33, 0.36]
OFFSETS = dict(impervious_surface=0.10, building=-0.10,
               low_vegetation=0.05, tree=-0.05, car=0.0)


def per_class(m, c):
    iou = {k: m + OFFSETS[k] for k in FIVE}
    iou['clutter'] = c
    return iou


def write_results(work_root, config, seed, iou):
    folder = osp.join(work_root, config, f'seed{seed}', 'test')
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'per_class_iou.json'), 'w') as f:
        json.dump(dict(format='ct_mmseg.per_class_iou.v1', classes=CLASSES,
                       iou=iou), f)


@pytest.fixture
def three_seeds(tmp_path):
    root = str(tmp_path / 'grid')
    for seed, (m, c) in enumerate(zip(SEED_MIOU, SEED_CLUTTER)):
        write_results(root, 'dcswin_potsdam', seed, per_class(m, c))
    return root


def test_mean_and_sample_std_by_hand(three_seeds):
    groups = ct_table.collect(three_seeds)
    assert len(groups) == 1
    row = ct_table.summarize(groups[0], ddof=1)
    # mean 0.72; deviations -0.02, 0, 0.02 -> sample variance
    # (0.0004 + 0 + 0.0004) / (3 - 1) = 0.0004 -> std 0.02
    assert row['miou'] == pytest.approx(0.72, abs=1e-12)
    assert row['std'] == pytest.approx(0.02, abs=1e-12)
    for name in FIVE:
        assert row[name] == pytest.approx(0.72 + OFFSETS[name], abs=1e-12)
    assert row['clutter'] == pytest.approx(0.33, abs=1e-12)
    # MMSeg's 6-class mIoU per seed: (5 m + c) / 6
    six = [(5 * m + c) / 6 for m, c in zip(SEED_MIOU, SEED_CLUTTER)]
    assert row['miou6'] == pytest.approx(sum(six) / 3, abs=1e-12)
    # labels of a known config folder without a dumped config
    assert (row['model'], row['backbone'], row['loss']) == ('DCSwin', 'Swin',
                                                            '-')
    assert row['seeds'] == ['0', '1', '2'] and row['num_seeds'] == 3


def test_population_std_option(three_seeds):
    row = ct_table.summarize(ct_table.collect(three_seeds)[0], ddof=0)
    # population variance 0.0008 / 3
    assert row['std'] == pytest.approx(math.sqrt(0.0008 / 3), abs=1e-12)


def test_markdown_and_csv(three_seeds, tmp_path, capsys):
    md, out_csv = tmp_path / 't.md', tmp_path / 't.csv'
    assert ct_table.main(['--work-root', three_seeds, '--md', str(md),
                          '--csv', str(out_csv)]) == 0
    text = md.read_text()
    assert text == capsys.readouterr().out
    assert 'Clutter excluded' in text and 'sample standard deviation' in text
    assert '| DCSwin (Baseline) | Swin | - | 0.7200 (0.0200) |' in text
    with open(out_csv) as f:
        (row, ) = list(csv.DictReader(f))
    assert float(row['miou_5cls_no_clutter']) == pytest.approx(0.72)
    assert float(row['miou_5cls_no_clutter_std']) == pytest.approx(0.02)
    assert float(row['iou_clutter']) == pytest.approx(0.33)
    assert row['std_ddof'] == '1' and row['seeds'] == '0 1 2'


def test_paper_rows_are_the_transcribed_table(three_seeds, capsys):
    assert ct_table.main(['--work-root', three_seeds, '--paper']) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line.startswith('| DC')
             or line.startswith('| Unet')]
    # ours, then the paper's DCSwin baseline, then the other 8 paper rows
    assert len(lines) == 1 + len(ct_table.PAPER)
    assert lines[0].endswith('| ours |')
    assert '| DCSwin (Baseline) | Swin | - | 0.7728 (0.0016) | 0.8284 |' \
        in lines[1] and lines[1].endswith('| paper |')


def test_paper_mIoU_is_the_five_class_mean():
    """The transcription and the convention: the 5-class mean (Clutter
    excluded) gives the published mIoU to rounding for 7 of the 9 rows; the
    6-class mean never does. The two DCPoolFormer CT rows are off in the
    paper itself (its mIoU is not the mean of its own class columns)."""
    rounding = 0.001
    five_ok, six_ok = [], []
    for row in ct_table.PAPER:
        five = sum(row[c] for c in FIVE) / len(FIVE)
        six = sum(row[c] for c in CLASSES) / len(CLASSES)
        if abs(five - row['miou']) < rounding:
            five_ok.append((row['model'], row['loss']))
        six_ok.append(abs(six - row['miou']) < rounding)
    assert not any(six_ok)
    assert set(five_ok) == {(r['model'], r['loss']) for r in ct_table.PAPER
                            } - {('DCPoolFormer', 'CL'),
                                 ('DCPoolFormer', 'InfoNCE')}


def test_single_seed_has_no_sample_std_and_nan_classes(tmp_path, capsys):
    root = str(tmp_path / 'grid')
    iou = per_class(0.5, 0.1)
    iou['car'] = None  # absent from labels and predictions: NaN
    write_results(root, 'unetformer_ct-infonce_potsdam', 0, iou)
    row = ct_table.summarize(ct_table.collect(root)[0])
    assert row['std'] is None and row['car'] is None
    four = [iou[c] for c in FIVE if iou[c] is not None]
    assert row['miou'] == pytest.approx(sum(four) / len(four))
    assert (row['model'], row['loss']) == ('UnetFormer', 'InfoNCE')
    ct_table.main(['--work-root', root])
    assert '(n/a)' in capsys.readouterr().out


def test_mmengine_test_log_fallback(tmp_path):
    """Without per_class_iou.json the newest tools/test.py JSON log (its
    IoU.<class> keys, percent) is read."""
    root = tmp_path / 'grid'
    folder = root / 'dcpoolformer_ct_potsdam' / 'seed0' / 'test'
    iou = per_class(0.6, 0.2)
    for stamp, scale in (('20240101_000000', 0.5), ('20240102_000000', 1)):
        log = folder / stamp / f'{stamp}.json'
        log.parent.mkdir(parents=True)
        log.write_text(json.dumps({f'IoU.{c}': 100 * v * scale
                                   for c, v in iou.items()}))
    row = ct_table.summarize(ct_table.collect(str(root))[0])
    assert row['miou'] == pytest.approx(0.6)
    assert (row['model'], row['loss']) == ('DCPoolFormer', 'CL')


def test_runs_without_results_are_left_out(three_seeds, capsys):
    os.makedirs(osp.join(three_seeds, 'dcswin_potsdam', 'seed3'))
    warnings = []
    row = ct_table.summarize(ct_table.collect(three_seeds,
                                              warn=warnings.append)[0])
    assert row['num_seeds'] == 3
    assert len(warnings) == 1 and 'seed3' in warnings[0]


def test_missing_class_is_an_error(tmp_path):
    root = str(tmp_path / 'grid')
    iou = per_class(0.5, 0.1)
    del iou['tree']
    write_results(root, 'dcswin_potsdam', 0, iou)
    with pytest.raises(ct_table.TableError, match='tree'):
        ct_table.collect(root)
