"""Plot what CT does to the patch tokens: 2-D maps and a cosine table.

For one model (or two: ``--compare-config/--compare-checkpoint``, e.g. the
baseline and its CT run) this tool

1. builds the evaluation dataset of the config (``val_dataloader`` by default)
   with MMSeg's registry and takes its first ``--num-images`` images;
2. runs the backbone (eval mode, no gradient) and, per stage, labels every
   patch token by the GT of its ``s x s`` block with
   :func:`ct_mmseg.core.patch_masks`: only *pure* patches, whose pixels are all
   one class, are kept - the rule CT uses for its positives, so the tokens
   shown are exactly the kind CT pulls together;
3. keeps at most ``--max-per-class`` tokens per class and stage, drawn
   uniformly at random over all images (a seeded random key per token, smallest
   keys kept: the same bottom-k draw CT's sampler uses). The draw depends on
   the GT only, so two models with the same data pipeline are shown on the
   *same* patches;
4. writes, into ``--out-dir``:

   * ``embeddings_<name>.png``: a 2-D map (t-SNE by default) of the kept tokens
     coloured by GT class, one panel per stage; with two models also
     ``embeddings_compare.png``, the two models one above the other, stage by
     stage;
   * ``similarity.md`` and ``similarity.csv`` (also printed): per stage and
     class the mean intra-class and inter-class cosine similarity of the same
     tokens.

**Which space is shown** (``--space``, recorded in every title and table):

* ``auto`` (default): a model with a :class:`ContrastiveTransformerHead` is
  shown in CT's projection space - the trained projection heads applied to
  every token (``head.forward``), L2-normalised, the space CT's loss acts on;
  a model without CT is shown in its raw backbone tokens, L2-normalised;
* ``backbone``: the raw backbone tokens, L2-normalised, for every model. This
  is the only space a baseline and a CT model share, and the one that is kept
  at inference (the projection heads are dropped), so use it to compare
  absolute numbers between the two.

**Why t-SNE.** The question is whether tokens of one class form tight
groups apart from the others, a question about neighbourhoods: t-SNE keeps
neighbourhoods, while PCA (``--method pca``) shows only the two directions of
largest variance and can hide separated groups. Both are scikit-learn's;
``--method umap`` uses umap-learn (optional: ``pip install
'ct_mmseg[umap]'``). The per-class bound keeps the number of points small
(default 200 per class: at most 1200 points for Potsdam's six classes).
Every method is seeded with ``--seed``, so the same tokens give the same
picture. t-SNE distances between groups and group sizes carry no meaning;
read the cosine table for numbers.

Example (baseline vs CT on the demo)::

    python tools/plot_embeddings.py \\
        configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py \\
        work_dirs/ct/iter_200.pth \\
        --compare-config configs/ct/demo/swin-tiny_upernet_potsdam-demo.py \\
        --compare-checkpoint work_dirs/base/iter_200.pth \\
        --num-images 8 --out-dir work_dirs/embeddings
"""
import argparse
import copy
import csv
import math
import os
import os.path as osp
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

SPACE_PROJECTION = 'CT projection (head.forward, L2-normalised)'
SPACE_BACKBONE = 'backbone tokens (L2-normalised)'


# --------------------------------------------------------------------------- #
# Tokens
# --------------------------------------------------------------------------- #
@dataclass
class StageTokens:
    """The tokens of one stage that the plots and the table are made from.

    Attributes:
        stage (int): backbone output index.
        stride (int): the stage's patch size in pixels.
        space (str): which embedding space the tokens are in.
        tokens (Tensor): (n, D) float32, unit rows.
        labels (Tensor): (n,) int64, the class of each token's pure patch.
        positions (Tensor): (n, 3) int64, (image index, row, column) of each
            token in the stage's grid, so a token can be traced to its patch.
    """
    stage: int
    stride: int
    space: str
    tokens: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor


@dataclass
class ModelTokens:
    """What :func:`collect_tokens` returns for one model."""
    name: str
    space: str
    classes: Sequence[str]
    stages: List[StageTokens] = field(default_factory=list)


def load_model(config: str, checkpoint: str, device: str = 'cpu',
               cfg_options: Optional[dict] = None):
    """Build the model of ``config`` (CT head included) and load weights.

    A config that uses the CT fragment (``ct_head`` key) gets its CT head
    added exactly as :class:`ct_mmseg.CTRunner` adds it at training time, so
    the projection heads' weights in the checkpoint have somewhere to go.

    Returns:
        tuple: (model in eval mode, the Config used).
    """
    from mmengine.config import Config
    from mmseg.apis import init_model

    import ct_mmseg  # noqa: F401  registers the CT modules, checkpoint loader
    from ct_mmseg.config_injection import add_ct_to_config

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('ct_head') is not None:
        add_ct_to_config(cfg)
    # init_model does not call init_weights, so no pretrained weights are
    # downloaded; the checkpoint provides every weight.
    model = init_model(cfg, checkpoint, device=device)
    return model, cfg


def find_ct_head(model):
    """The model's ContrastiveTransformerHead, or None for a baseline."""
    from ct_mmseg.models import ContrastiveTransformerHead
    return next((m for m in model.modules()
                 if isinstance(m, ContrastiveTransformerHead)), None)


def build_dataset(cfg, split: str = 'val'):
    """The dataset of ``{split}_dataloader``, with GT resized like the image.

    MMSeg's test pipelines load the annotation *after* ``Resize`` so that the
    metric sees the full-resolution GT. Here the GT must match the tokens, so
    ``LoadAnnotations`` is moved right after ``LoadImageFromFile``: MMSeg's
    ``Resize`` then resizes the mask too (nearest), as in training.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS

    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not loader.get('dataset'):
        raise KeyError(f'the config has no {split}_dataloader.dataset')
    dataset_cfg = copy.deepcopy(loader['dataset'])
    # Wrappers (RepeatDataset, ...) hold the real dataset under `dataset`.
    while 'pipeline' not in dataset_cfg and 'dataset' in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    pipeline = list(dataset_cfg['pipeline'])
    if any(t['type'] == 'TestTimeAug' for t in pipeline):
        raise ValueError(f'{split}_dataloader uses TestTimeAug; pick a split '
                         'with a plain pipeline')
    types = [t['type'] for t in pipeline]
    if 'LoadAnnotations' not in types:
        raise ValueError(f'{split}_dataloader pipeline has no LoadAnnotations')
    load_ann = pipeline.pop(types.index('LoadAnnotations'))
    types.remove('LoadAnnotations')
    pipeline.insert(types.index('LoadImageFromFile') + 1, load_ann)
    dataset_cfg['pipeline'] = pipeline
    return DATASETS.build(dataset_cfg)


def _backbone_stages(model, cfg, head):
    """(in_index, strides) of the stages to show.

    A CT model: the stages its head uses, with the head's strides. A baseline:
    every 4-D backbone output, strides measured the way the CT fragment
    measures them (``infer_backbone_stages``), so both models of a comparison
    cut the GT the same way.
    """
    if head is not None:
        return list(head.in_index), list(head.strides)
    from ct_mmseg.config_injection import infer_backbone_stages
    channels, strides = infer_backbone_stages(cfg.model.backbone)
    return list(range(len(channels))), strides


def _ignore_index(model, head) -> int:
    """The GT label that marks no class: the CT head's, else the decode
    head's (the last one of a cascade), else MMSeg's default 255."""
    if head is not None:
        return head.ignore_index
    decode = model.decode_head
    if isinstance(decode, torch.nn.ModuleList):
        decode = decode[-1]
    return getattr(decode, 'ignore_index', 255)


@torch.no_grad()
def collect_tokens(model, cfg, dataset, num_images: int = 8,
                   max_per_class: int = 200, seed: int = 0,
                   space: str = 'auto', name: str = 'model') -> ModelTokens:
    """The labelled tokens of the first ``num_images`` images, per stage.

    Args:
        model: a segmentor from :func:`load_model` (eval mode).
        cfg (Config): its config (for the backbone of a baseline).
        dataset: from :func:`build_dataset`.
        num_images (int): images taken from the start of the dataset.
        max_per_class (int): bound on the tokens kept per class and stage.
        seed (int): seed of the sub-sampling draw.
        space (str): 'auto', 'projection' (needs a CT head) or 'backbone'.
        name (str): label of the model in plots and tables.

    Returns:
        ModelTokens: per stage, unit-norm tokens with their class and position.
    """
    from ct_mmseg.core import patch_masks

    head = find_ct_head(model)
    if space == 'auto':
        space = 'projection' if head is not None else 'backbone'
    if space == 'projection' and head is None:
        raise ValueError(f'{name}: --space projection needs a model with a '
                         'ContrastiveTransformerHead')
    in_index, strides = _backbone_stages(model, cfg, head)
    num_classes = len(dataset.metainfo['classes'])
    ignore_index = _ignore_index(model, head)
    # one generator per stage, seeded by (seed, backbone output index): a
    # stage's draw depends only on its GT grid, not on which other stages
    # are shown, so two models that see the same GT draw the same patches
    generators = [torch.Generator().manual_seed(seed * 1000 + stage)
                  for stage in in_index]
    device = next(model.parameters()).device
    # per stage: running bottom-k pools (keys, tokens, labels, positions)
    pools: List[Optional[List[torch.Tensor]]] = [None] * len(in_index)
    count = min(num_images, len(dataset))
    if count == 0:
        raise ValueError('the dataset is empty')
    for i in range(count):
        data = dataset[i]
        batch = model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
            False)
        gt = batch['data_samples'][0].gt_sem_seg.data.reshape(
            1, *batch['data_samples'][0].gt_sem_seg.data.shape[-2:])
        feats = model.backbone(batch['inputs'])
        feats = [f for f in feats if isinstance(f, torch.Tensor)
                 and f.dim() == 4]
        if space == 'projection':
            stage_maps = head.forward(feats)  # already L2-normalised
        else:
            stage_maps = [F.normalize(feats[j].float(), dim=1)
                          for j in in_index]
        for s, (emb, stride) in enumerate(zip(stage_maps, strides)):
            h, w = emb.shape[-2:]
            masks = patch_masks(gt.to(device).long(), stride, (h, w),
                                num_classes, ignore_index)
            pure = masks.positive.any(0)
            index = pure.nonzero().squeeze(1)
            labels = masks.positive[:, index].float().argmax(0)
            keys = torch.rand(index.numel(), generator=generators[s])
            tokens = emb[0].flatten(1).t()[index].float().cpu()
            positions = torch.stack([torch.full_like(index, i), index // w,
                                     index % w], 1).cpu()
            new = [keys, tokens, labels.cpu(), positions]
            if pools[s] is not None:
                new = [torch.cat([a, b]) for a, b in zip(pools[s], new)]
            pools[s] = _bottom_k_per_class(new, num_classes, max_per_class)
    space_name = SPACE_PROJECTION if space == 'projection' else SPACE_BACKBONE
    result = ModelTokens(name, space_name, tuple(dataset.metainfo['classes']))
    for s, (stage, stride) in enumerate(zip(in_index, strides)):
        keys, tokens, labels, positions = pools[s]
        order = torch.argsort(positions[:, 0] * 10**8 + positions[:, 1] *
                              10**4 + positions[:, 2])  # reading order
        result.stages.append(StageTokens(stage, stride, space_name,
                                         tokens[order], labels[order],
                                         positions[order]))
    return result


def _bottom_k_per_class(pool, num_classes, k):
    """Keep, per class, the ``k`` entries with the smallest random key.

    Applied after every image, this is uniform sampling without replacement
    over all images seen, in bounded memory.
    """
    keys, tokens, labels, positions = pool
    keep = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().squeeze(1)
        if idx.numel() > k:
            idx = idx[torch.topk(keys[idx], k, largest=False).indices]
        keep.append(idx)
    keep = torch.cat(keep)
    return [keys[keep], tokens[keep], labels[keep], positions[keep]]


# --------------------------------------------------------------------------- #
# Cosine table
# --------------------------------------------------------------------------- #
def class_similarity(tokens: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> List[Dict[str, float]]:
    """Mean intra- and inter-class cosine similarity, per class.

    ``intra`` is the mean of ``cos(x_i, x_j)`` over the pairs ``i != j`` of
    the class (NaN with fewer than 2 tokens); ``inter`` the mean over the
    pairs of one token of the class and one of any other class (NaN when
    either side is empty). Rows are normalised here, so any tokens work.

    Returns:
        list[dict]: per class ``n``, ``intra``, ``inter``.
    """
    x = F.normalize(tokens.double(), dim=1)
    cos = x @ x.t()
    rows = []
    for c in range(num_classes):
        mine = labels == c
        n, others = int(mine.sum()), int((~mine).sum())
        block = cos[mine][:, mine]
        # mean over i != j: the diagonal (cos(x, x) = 1) is taken out
        intra = ((block.sum() - block.diagonal().sum()) /
                 (n * (n - 1))).item() if n >= 2 else math.nan
        inter = cos[mine][:, ~mine].mean().item() if n and others else math.nan
        rows.append(dict(n=n, intra=intra, inter=inter))
    return rows


def similarity_rows(models: Sequence[ModelTokens]) -> List[dict]:
    """The table: one row per model, stage and class, plus a per-stage mean.

    The mean row averages the classes that have a value (unweighted, so a
    rare class counts as much as a common one).
    """
    rows = []
    for model in models:
        for st in model.stages:
            per_class = class_similarity(st.tokens, st.labels,
                                         len(model.classes))
            for name, r in zip(model.classes, per_class):
                rows.append(dict(model=model.name, space=st.space,
                                 stage=st.stage, stride=st.stride, cls=name,
                                 **r))
            vals = {k: [r[k] for r in per_class if not math.isnan(r[k])]
                    for k in ('intra', 'inter')}
            rows.append(dict(
                model=model.name, space=st.space, stage=st.stage,
                stride=st.stride, cls='(mean over classes)',
                n=sum(r['n'] for r in per_class),
                intra=sum(vals['intra']) / len(vals['intra'])
                if vals['intra'] else math.nan,
                inter=sum(vals['inter']) / len(vals['inter'])
                if vals['inter'] else math.nan))
    return rows


def _fmt(value):
    return '—' if math.isnan(value) else f'{value:.3f}'


def write_tables(rows: List[dict], out_dir: str) -> str:
    """Write ``similarity.csv`` and ``similarity.md``; return the Markdown."""
    fields = ['model', 'space', 'stage', 'stride', 'cls', 'n', 'intra',
              'inter', 'gap']
    with open(osp.join(out_dir, 'similarity.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(dict(r, gap=r['intra'] - r['inter']))
    lines = [
        '# Mean cosine similarity of pure-patch tokens',
        '',
        '`intra`: mean cosine over pairs of distinct tokens of the class; '
        '`inter`: mean cosine between a token of the class and a token of '
        'any other class; `gap` = intra - inter; `n`: tokens of the class '
        'used. Spaces differ between models unless `--space backbone` was '
        'given: compare absolute values only within one space. Classes '
        'with no pure patch at a stage are left out here (they are in '
        'similarity.csv with n = 0).',
        '',
        '| model | space | stage (stride) | class | n | intra | inter | gap |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        if r['n'] == 0 and not r['cls'].startswith('('):
            continue
        lines.append(
            f"| {r['model']} | {r['space']} | {r['stage']} ({r['stride']}) "
            f"| {r['cls']} | {r['n']} | {_fmt(r['intra'])} | "
            f"{_fmt(r['inter'])} | {_fmt(r['intra'] - r['inter'])} |")
    text = '\n'.join(lines) + '\n'
    with open(osp.join(out_dir, 'similarity.md'), 'w') as f:
        f.write(text)
    return text


# --------------------------------------------------------------------------- #
# 2-D maps
# --------------------------------------------------------------------------- #
def pca(x: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """Project the rows of ``x`` on their ``dim`` principal axes
    (scikit-learn's PCA, whose sign convention makes the result
    deterministic); zero columns pad the result when ``x`` has fewer rows or
    features than ``dim``."""
    from sklearn.decomposition import PCA
    n, features = x.shape
    out = torch.zeros(n, dim, dtype=torch.float64)
    components = min(dim, n, features)
    if n >= 2 and components >= 1:
        out[:, :components] = torch.from_numpy(
            PCA(n_components=components, svd_solver='full').fit_transform(
                x.double().numpy()))
    return out


def tsne(x: torch.Tensor, perplexity: float = 30.0, iterations: int = 1000,
         dim: int = 2, seed: int = 0) -> torch.Tensor:
    """scikit-learn's t-SNE of the rows of ``x`` (PCA initialisation,
    learning rate 'auto', Barnes-Hut), seeded so the same tokens give the
    same picture.

    Args:
        x (Tensor): (n, D).
        perplexity (float): effective neighbours; lowered to (n - 1) / 3 for
            few points, as t-SNE needs perplexity < n.
        iterations (int): gradient steps (scikit-learn needs >= 250).
        seed (int): ``random_state``.

    Returns:
        Tensor: (n, dim), float64.
    """
    import inspect

    from sklearn.manifold import TSNE
    n = x.shape[0]
    if n < 4:  # too few points for neighbourhoods: fall back to PCA
        return pca(x, dim)
    # scikit-learn 1.5 renamed n_iter to max_iter (and 1.7 dropped n_iter)
    steps_key = 'max_iter' if 'max_iter' in inspect.signature(
        TSNE).parameters else 'n_iter'
    model = TSNE(n_components=dim, perplexity=min(perplexity, (n - 1) / 3),
                 init='pca', learning_rate='auto', random_state=seed,
                 **{steps_key: max(int(iterations), 250)})
    return torch.from_numpy(model.fit_transform(x.double().numpy()))


def umap_2d(x: torch.Tensor, neighbours: int = 15, seed: int = 0
            ) -> torch.Tensor:
    """UMAP of the rows of ``x`` (needs ``pip install umap-learn``)."""
    try:
        import umap
    except ImportError as error:
        raise ImportError(
            "--method umap needs umap-learn: pip install 'ct_mmseg[umap]' "
            '(or umap-learn)') from error
    n = x.shape[0]
    if n < 4:
        return pca(x, 2)
    model = umap.UMAP(n_components=2, n_neighbors=min(neighbours, n - 1),
                      random_state=seed)
    return torch.from_numpy(model.fit_transform(x.double().numpy()))


def embed_2d(tokens: torch.Tensor, method: str = 'tsne',
             perplexity: float = 30.0, iterations: int = 1000,
             seed: int = 0) -> torch.Tensor:
    """2-D coordinates of the rows of ``tokens`` by ``method`` ('tsne',
    'pca' or 'umap')."""
    if method == 'pca':
        return pca(tokens).float()
    if method == 'umap':
        return umap_2d(tokens, seed=seed).float()
    if method != 'tsne':
        raise ValueError(f'--method must be tsne, pca or umap, got {method!r}')
    return tsne(tokens, perplexity=perplexity, iterations=iterations,
                seed=seed).float()


def _class_colours(num_classes):
    import matplotlib
    cmap = matplotlib.colormaps['tab10']
    return [cmap(k % 10) for k in range(num_classes)]


def embed_model(model: ModelTokens, method: str = 'tsne',
                perplexity: float = 30.0, iterations: int = 1000,
                seed: int = 0) -> List[torch.Tensor]:
    """2-D coordinates of every stage's tokens (computed once per model, as
    the single-model and the comparison figures show the same maps)."""
    return [embed_2d(st.tokens, method, perplexity, iterations, seed)
            if st.labels.numel() else torch.zeros(0, 2)
            for st in model.stages]


def _draw_row(axes, model: ModelTokens, coords: Sequence[torch.Tensor],
              colours, row_label: Optional[str] = None):
    for ax, st, xy in zip(axes, model.stages, coords):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f'stage {st.stage} (stride {st.stride}), '
                     f'{st.labels.numel()} tokens', fontsize=9)
        if st.labels.numel() == 0:
            ax.text(0.5, 0.5, 'no pure patch', ha='center', va='center',
                    transform=ax.transAxes)
            continue
        xy = xy.numpy()
        labels = st.labels.numpy()
        for k in range(len(model.classes)):
            sel = labels == k
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=6, alpha=0.8,
                           color=colours[k], linewidths=0)
    if row_label:
        axes[0].set_ylabel(row_label, fontsize=9)


def _legend(fig, classes, colours):
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker='o', linestyle='', color=colours[k],
                      label=name) for k, name in enumerate(classes)]
    fig.legend(handles=handles, loc='lower center', ncol=len(classes),
               fontsize=8, frameon=False)


METHOD_NAMES = {'tsne': 't-SNE (scikit-learn)', 'pca': 'PCA',
                'umap': 'UMAP'}


def plot_models(models: Sequence[ModelTokens],
                coords: Sequence[Sequence[torch.Tensor]], out_path: str,
                method: str, dpi: int = 100) -> str:
    """One row of panels (one per stage) per model, saved as a PNG.

    ``coords[m][s]`` are the 2-D coordinates of model m's stage s tokens
    (:func:`embed_model`); ``method`` only labels the figure.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cols = max(len(m.stages) for m in models)
    fig, axes = plt.subplots(len(models), cols, squeeze=False,
                             figsize=(3.0 * cols, 3.0 * len(models) + 0.9))
    colours = _class_colours(len(models[0].classes))
    for row, model, xy in zip(axes, models, coords):
        _draw_row(row, model, xy, colours,
                  row_label=f'{model.name}\n{model.space}')
        for ax in row[len(model.stages):]:
            ax.axis('off')
    fig.suptitle(f'Pure-patch tokens coloured by GT class, '
                 f'{METHOD_NAMES[method]}', fontsize=10)
    _legend(fig, models[0].classes, colours)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='2-D maps and a cosine table of the patch tokens of one '
        'or two MMSeg models (e.g. baseline vs CT).')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--compare-config')
    parser.add_argument('--compare-checkpoint')
    parser.add_argument('--name', help='label of the model (default: the '
                        'config file name)')
    parser.add_argument('--compare-name')
    parser.add_argument('--split', default='val', choices=['val', 'test',
                                                            'train'],
                        help='which *_dataloader.dataset to read (default '
                        'val; train pipelines are usually random)')
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--max-per-class', type=int, default=200,
                        help='bound on the tokens per class and stage')
    parser.add_argument('--space', default='auto',
                        choices=['auto', 'projection', 'backbone'])
    parser.add_argument('--method', default='tsne',
                        choices=['tsne', 'pca', 'umap'],
                        help='umap needs umap-learn (ct_mmseg[umap])')
    parser.add_argument('--perplexity', type=float, default=30.0)
    parser.add_argument('--iterations', type=int, default=1000,
                        help='t-SNE gradient steps (>= 250: the first 250 '
                        'are the early-exaggeration phase)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the token draw and of t-SNE / UMAP')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-dir', default='work_dirs/embeddings')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides applied to both configs')
    args = parser.parse_args(argv)
    if bool(args.compare_config) != bool(args.compare_checkpoint):
        parser.error('--compare-config and --compare-checkpoint go together')
    return args


def _name(config, given, taken=()):
    name = given or osp.splitext(osp.basename(config))[0]
    return f'{name}_2' if name in taken else name


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    runs = [(args.config, args.checkpoint, _name(args.config, args.name))]
    if args.compare_config:
        runs.append((args.compare_config, args.compare_checkpoint,
                     _name(args.compare_config, args.compare_name,
                           {runs[0][2]})))
    models = []
    for config, checkpoint, name in runs:
        model, cfg = load_model(config, checkpoint, args.device,
                                args.cfg_options)
        dataset = build_dataset(cfg, args.split)
        models.append(collect_tokens(
            model, cfg, dataset, args.num_images, args.max_per_class,
            args.seed, args.space, name))
        del model
    coords = [embed_model(m, args.method, args.perplexity, args.iterations,
                          args.seed) for m in models]
    written = []
    for m, xy in zip(models, coords):
        written.append(plot_models(
            [m], [xy], osp.join(args.out_dir, f'embeddings_{m.name}.png'),
            args.method))
    if len(models) == 2:
        written.append(plot_models(
            models, coords, osp.join(args.out_dir, 'embeddings_compare.png'),
            args.method))
    print(write_tables(similarity_rows(models), args.out_dir))
    for path in written + [osp.join(args.out_dir, 'similarity.md'),
                           osp.join(args.out_dir, 'similarity.csv')]:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
