"""Seeing what CT does: embedding plots, training curves, the CT-patch figure
and CT on a backbone the paper did not use (SegFormer MiT-B0).

One tiny baseline and one tiny CT model are trained for 2 iterations on the
demo data through MMSeg's tools/train.py (module-scoped, shared by the
tests), with the config template, data fixture and helpers of
``e2e_utils`` and ``conftest``.
"""
import csv
import itertools
import math
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from ct_mmseg.visualisation.ct_patches import stride_masks
from ct_mmseg.visualisation.embedding_maps import embed_2d, pca, tsne
from ct_mmseg.visualisation.embeddings import (SPACE_BACKBONE,
                                               SPACE_PROJECTION,
                                               build_dataset, collect_tokens,
                                               load_model)
from e2e_utils import POTSDAM_CLASSES as CLASSES
from e2e_utils import (REPO, TINY_TRAIN_DATALOADER, TOOLS, run, scalars,
                       tiny_config)

# the trained tiny models evaluate on the val image resized to 256 px so that
# every stage has pure patches; the cap makes sub-sampling happen at stage 0
EVAL_SIZE = 256
MAX_PER_CLASS = 50
TSNE_ITERATIONS = 300  # >= 250: past the early-exaggeration phase
PLOT_ARGS = ['--num-images', 1, '--max-per-class', MAX_PER_CLASS,
             '--iterations', TSNE_ITERATIONS, '--cfg-options',
             f'val_dataloader.dataset.pipeline.1.scale=({EVAL_SIZE},'
             f'{EVAL_SIZE})']


@pytest.fixture(scope='module')
def trained(demo_data, tmp_path_factory):
    """{'base'|'ct': (config, checkpoint, work_dir)} after 2 iterations."""
    out = {}
    for key, ct in (('base', False), ('ct', True)):
        folder = tmp_path_factory.mktemp(key)
        cfg = tiny_config(folder, demo_data, ct=ct)
        work = folder / 'work'
        run([sys.executable, osp.join(TOOLS, 'train.py'), cfg, '--work-dir',
             work, '--cfg-options', 'train_cfg.max_iters=2',
             'train_cfg.val_interval=2'], cwd=folder)
        out[key] = (cfg, str(work / 'iter_2.pth'), work)
    return out


def read_png(path):
    import matplotlib.image as mpimg
    assert osp.getsize(path) > 1000, f'{path} is (nearly) empty'
    return mpimg.imread(path)


# --------------------------------------------------------------------------- #
# embedding plots
# --------------------------------------------------------------------------- #
def naive_pure_counts(gt: np.ndarray, stride: int, num_classes: int):
    """Pure patches per class, by looking at every block (no ct_mmseg code).

    Swin pads its input to a multiple of the stride; the test image (256 px)
    is a multiple of every stride, so the blocks tile the mask exactly.
    """
    counts = np.zeros(num_classes, dtype=int)
    for r in range(0, gt.shape[0], stride):
        for c in range(0, gt.shape[1], stride):
            values = np.unique(gt[r:r + stride, c:c + stride])
            if len(values) == 1 and values[0] < num_classes:
                counts[values[0]] += 1
    return counts


def test_embedding_plots_and_similarity_table(trained, tmp_path):
    base_cfg, base_ckpt, _ = trained['base']
    ct_cfg, ct_ckpt, _ = trained['ct']
    out = tmp_path / 'emb'
    log = run([sys.executable, osp.join(REPO, 'tools', 'plot_embeddings.py'),
               ct_cfg, ct_ckpt, '--compare-config', base_cfg,
               '--compare-checkpoint', base_ckpt, '--out-dir', out,
               *PLOT_ARGS], cwd=tmp_path)
    assert '| tiny_ct | CT projection' in log  # the table is printed
    assert '| tiny_base | backbone tokens' in log

    # figures: one per model (1 row of 4 stage panels) and the comparison
    # (2 rows); each panel is 3 in at 100 dpi
    single = [read_png(out / f'embeddings_{n}.png')
              for n in ('tiny_ct', 'tiny_base')]
    compare = read_png(out / 'embeddings_compare.png')
    for image in single + [compare]:
        assert image.ndim == 3 and image.shape[2] in (3, 4)
        assert image.shape[1] >= 4 * 250  # four stage panels side by side
        assert image.std() > 0.01  # not a blank canvas
    assert compare.shape[1] == single[0].shape[1]
    assert compare.shape[0] > single[0].shape[0] + 250  # a second row

    # the tokens behind them, recomputed in-process with the same settings
    options = {'val_dataloader.dataset.pipeline.1.scale':
               (EVAL_SIZE, EVAL_SIZE)}
    tokens = {}
    for key, cfg_path, ckpt in (('ct', ct_cfg, ct_ckpt),
                                ('base', base_cfg, base_ckpt)):
        model, cfg = load_model(cfg_path, ckpt, cfg_options=options)
        dataset = build_dataset(cfg)
        tokens[key] = collect_tokens(
            model, cfg, dataset, num_images=1, max_per_class=MAX_PER_CLASS,
            name=f'tiny_{key}')
        if key == 'base':
            base_model, base_data = model, dataset[0]
    ct_tokens, base_tokens = tokens['ct'], tokens['base']
    assert ct_tokens.space == SPACE_PROJECTION
    assert base_tokens.space == SPACE_BACKBONE
    assert [s.stride for s in ct_tokens.stages] == [4, 8, 16, 32]

    # labels: the GT (resized with the image: the tool moves LoadAnnotations
    # before Resize) has, per class, the pure patches a naive scan finds; the
    # tool keeps min(that, cap) of them
    gt = base_data['data_samples'].gt_sem_seg.data[0].numpy()
    assert gt.shape == tuple(base_data['inputs'].shape[-2:]) == \
        (EVAL_SIZE, EVAL_SIZE)
    capped = False
    for stage in base_tokens.stages:
        expected = naive_pure_counts(gt, stage.stride, len(CLASSES))
        found = np.bincount(stage.labels.numpy(), minlength=len(CLASSES))
        assert found.tolist() == np.minimum(expected, MAX_PER_CLASS).tolist()
        capped |= bool((expected > MAX_PER_CLASS).any())
        # each label is the one class of the token's block
        for (_, r, c), label in zip(stage.positions.tolist(),
                                    stage.labels.tolist()):
            s = stage.stride
            assert set(np.unique(gt[r * s:(r + 1) * s,
                                    c * s:(c + 1) * s])) == {label}
    assert capped  # the sub-sampling was exercised
    # the draw depends on the GT only: both models show the same patches
    for a, b in zip(ct_tokens.stages, base_tokens.stages):
        assert torch.equal(a.positions, b.positions)

    # baseline tokens are the L2-normalised backbone outputs at those patches
    with torch.no_grad():
        batch = base_model.data_preprocessor(
            dict(inputs=[base_data['inputs']],
                 data_samples=[base_data['data_samples']]), False)
        feats = base_model.backbone(batch['inputs'])
    for stage in base_tokens.stages:
        _, r, c = stage.positions[0].tolist()
        raw = feats[stage.stage][0, :, r, c]
        assert torch.allclose(stage.tokens[0], raw / raw.norm(), atol=1e-5)

    # the table: recompute one class's intra-class cosine pair by pair
    with open(out / 'similarity.csv') as f:
        rows = list(csv.DictReader(f))
    stage0 = ct_tokens.stages[0]
    label = int(np.bincount(stage0.labels.numpy()).argmax())
    x = stage0.tokens[stage0.labels == label].double()
    x = x / x.norm(dim=1, keepdim=True)
    pairs = [float(x[i] @ x[j]) for i, j in
             itertools.permutations(range(len(x)), 2)]
    others = stage0.tokens[stage0.labels != label].double()
    others = others / others.norm(dim=1, keepdim=True)
    inter = float((x @ others.t()).mean())
    row = next(r for r in rows if r['model'] == 'tiny_ct' and
               r['stage'] == '0' and r['cls'] == CLASSES[label])
    assert int(row['n']) == len(x)
    assert float(row['intra']) == pytest.approx(sum(pairs) / len(pairs),
                                                abs=1e-6)
    assert float(row['inter']) == pytest.approx(inter, abs=1e-6)
    values = [float(r[k]) for r in rows for k in ('intra', 'inter')]
    finite = [v for v in values if not math.isnan(v)]
    assert finite and all(-1 - 1e-9 <= v <= 1 + 1e-9 for v in finite)
    # classes with fewer than 2 tokens have no intra value, not a made-up one
    for r in rows:
        if not r['cls'].startswith('(') and int(r['n']) < 2:
            assert math.isnan(float(r['intra']))
    md = (out / 'similarity.md').read_text()
    assert f"| {row['cls']} | {row['n']} | {float(row['intra']):.3f} |" in md


def clusters(points_per_cluster=30, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 16, generator=gen) * 10
    labels = torch.arange(3).repeat_interleave(points_per_cluster)
    return centres[labels] + torch.randn(len(labels), 16, generator=gen), \
        labels


def test_tsne_separates_clusters_and_is_seeded():
    """The tool's t-SNE is scikit-learn's: well-separated clusters stay
    separated, and a seed gives one layout."""
    x, labels = clusters()
    y = embed_2d(x, 'tsne', perplexity=10.0, iterations=300, seed=0)
    assert y.shape == (90, 2) and y.dtype == torch.float32
    d = torch.cdist(y, y).fill_diagonal_(math.inf)
    assert torch.equal(labels[d.argmin(1)], labels)  # nearest: own cluster
    assert torch.equal(y, embed_2d(x, 'tsne', perplexity=10.0,
                                   iterations=300, seed=0))
    # perplexity above what 6 points allow is lowered, not an error
    assert tsne(x[:6], perplexity=30.0, iterations=250).shape == (6, 2)


def test_pca_is_the_principal_projection():
    x, _ = clusters()
    y = embed_2d(x, 'pca').double()
    centred = (x - x.mean(0)).double()
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    expected = centred @ vh[:2].t()
    # the same axes up to each axis' sign
    assert torch.allclose(y.abs(), expected.abs(), atol=1e-3)
    # fewer rows / features than 2: zero-padded, no error
    assert pca(x[:1]).tolist() == [[0.0, 0.0]]
    assert pca(x[:, :1]).shape == (90, 2)


def test_umap_is_optional_and_says_how_to_get_it(monkeypatch):
    x, labels = clusters()
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, 'umap', None)  # as if not installed
        with pytest.raises(ImportError, match=r'ct_mmseg\[umap\]'):
            embed_2d(x, 'umap')
    pytest.importorskip('umap')
    y = embed_2d(x, 'umap', seed=0)
    d = torch.cdist(y, y).fill_diagonal_(math.inf)
    assert torch.equal(labels[d.argmin(1)], labels)


# --------------------------------------------------------------------------- #
# training curves through MMSeg's analyze_logs.py
# --------------------------------------------------------------------------- #
def test_training_curves_with_mmseg_analyze_logs(trained, tmp_path):
    _, _, work = trained['ct']
    logs = sorted(map(str, work.glob('*/vis_data/scalars.json')))
    assert len(logs) == 1
    tool = osp.join(REPO, 'tools', 'plot_ct_curves.py')
    for name, keys, expected in (
            ('losses', ['aux_1.loss_ct_s*'],
             [f'aux_1.loss_ct_s{i}' for i in range(4)]),
            ('stats', ['ct_s0/cos_pos', 'ct_s0/cos_neg'],
             ['ct_s0/cos_pos', 'ct_s0/cos_neg']),
            ('miou', ['mIoU'], ['mIoU'])):
        png = tmp_path / f'{name}.png'
        log = run([sys.executable, tool, *logs, '--keys', *keys, '--out',
                   png], cwd=tmp_path)
        # analyze_logs.py prints one line per curve it draws
        drawn = [line.rsplit('metric is ', 1)[1] for line in log.splitlines()
                 if 'metric is ' in line]
        assert drawn == expected
        image = read_png(png)
        # matplotlib's default figure, 6.4 x 4.8 in at 100 dpi
        assert image.shape[:2] == (480, 640)
    # a key the log lacks (CT alone would be aux.*) names the keys it has
    bad = subprocess.run([sys.executable, tool, *logs, '--keys',
                          'aux.loss_ct_s*', '--out', tmp_path / 'bad.png'],
                         capture_output=True, text=True)
    assert bad.returncode != 0
    assert 'aux_1.loss_ct_s0' in bad.stderr and 'ct_s3/no_pos' in bad.stderr
    assert not (tmp_path / 'bad.png').exists()


# --------------------------------------------------------------------------- #
# docs: the CT-patch figure, CT on SegFormer
# --------------------------------------------------------------------------- #
def test_draw_ct_patches(demo_data, tmp_path):
    png = tmp_path / 'ct_patches.png'
    run([sys.executable, osp.join(REPO, 'tools', 'draw_ct_patches.py'),
         '--data-root', demo_data, '--out', png], cwd=tmp_path)
    image = read_png(png)
    assert osp.getsize(png) < 300 * 1024
    assert image.shape[0] > 400 and image.shape[1] > 1000  # 2 x 5 panels
    # the pixel maps drawn, against a block-by-block scan of a toy mask
    gt = np.full((32, 32), 0, dtype=np.uint8)
    gt[:16, :16] = 1   # one pure block of class 1 at stride 16
    gt[20:, 20:] = 1   # part of a block: neither positive nor negative
    gt[0, 31] = 255    # an ignore pixel in a block with no class 1
    (pos4, neg4), (pos16, neg16) = stride_masks(gt, 1, [4, 16], 6)
    assert pos16[:16, :16].all() and pos16.sum() == 16 * 16
    assert neg16[:16, 16:].all()  # an ignore pixel does not stop a negative
    assert not neg16[16:, 16:].any() and not pos16[16:, 16:].any()
    assert pos4.sum() == 16 * 16 + 12 * 12  # the 16x16 block + 12x12 corner
    assert not (pos4 & neg4).any()


SEGFORMER_TINY = '''
_base_ = [{base!r}]
data_root = {data_root!r}
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size))
''' + TINY_TRAIN_DATALOADER + '''\
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
'''


def test_segformer_with_ct_fragment_trains(demo_data, tmp_path):
    config = osp.join(REPO, 'configs', 'ct',
                      'segformer_mit-b0_ct_potsdam-demo.py')
    tiny = tmp_path / 'segformer_tiny.py'
    tiny.write_text(SEGFORMER_TINY.format(base=config, data_root=demo_data))
    work = tmp_path / 'work'
    log = run([sys.executable, osp.join(TOOLS, 'train.py'), tiny,
               '--work-dir', work], cwd=tmp_path)
    # MiT-B0's stages, measured by the fragment (not written in the config)
    assert 'Contrastive Transformer: stages in_index=[0, 1, 2, 3] ' \
        'channels=[32, 64, 160, 256] strides=[4, 8, 16, 32]' in log
    records = [r for r in scalars(work) if 'loss' in r]
    assert [r['step'] for r in records] == [1, 2]
    for record in records:
        # CT is SegFormer's only auxiliary head: aux.*, not aux_1.*
        stages = [record[f'aux.loss_ct_s{i}'] for i in range(4)]
        assert all(math.isfinite(v) and v >= 0 for v in stages)
        parts = sum(v for k, v in record.items()
                    if 'loss' in k and k != 'loss')
        assert record['loss'] == pytest.approx(parts, rel=1e-3)
    assert any(r['aux.loss_ct_s0'] > 0 for r in records)
    assert (work / 'iter_2.pth').exists()
