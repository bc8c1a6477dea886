"""The labelled patch tokens of a segmentor: what the embedding plots and
the cosine table are made of.

For one model, :func:`collect_tokens`

1. takes the first ``num_images`` images of a dataset built by
   :func:`build_dataset` (the GT resized with the image);
2. runs the backbone (eval mode, no gradient) and, per stage, labels every
   patch token by the GT of its ``s x s`` block with
   :func:`ct_mmseg.core.patch_masks`: only *pure* patches, whose pixels are all
   one class, are kept - the rule CT uses for its positives, so the tokens
   shown are exactly the kind CT pulls together;
3. keeps at most ``max_per_class`` tokens per class and stage, drawn
   uniformly at random over all images (a seeded random key per token,
   smallest keys kept: the same bottom-k draw CT's sampler uses). The draw
   depends on the GT only, so two models with the same data pipeline are
   shown on the *same* patches.

**Which space** (``space``, recorded in every :class:`StageTokens`):

* ``auto``: a model with a :class:`ContrastiveTransformerHead` is shown in
  CT's projection space - the trained projection heads applied to every
  token (``head.forward``), L2-normalised, the space CT's loss acts on; a
  model without CT is shown in its raw backbone tokens, L2-normalised;
* ``backbone``: the raw backbone tokens, L2-normalised, for every model. This
  is the only space a baseline and a CT model share, and the one that is kept
  at inference (the projection heads are dropped).

:mod:`.similarity` makes the cosine table of these tokens,
:mod:`.embedding_maps` their 2-D maps; ``tools/plot_embeddings.py`` is the
command line.
"""
import copy
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

SPACE_PROJECTION = 'CT projection (head.forward, L2-normalised)'
SPACE_BACKBONE = 'backbone tokens (L2-normalised)'


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


def load_weights(model, cfg, checkpoint: str) -> None:
    """Load ``checkpoint`` into ``model`` (built from ``cfg``), CT tensors
    included.

    A CT run's checkpoint holds the plain model's state dict and the CT
    heads' tensors in a section of their own
    (:mod:`ct_mmseg.checkpoint_format`); :func:`~ct_mmseg.checkpoint_format.
    read_plain` puts them back for a model with CT heads (as a CT runner
    does on ``load_from``) and drops them for one without. The checkpoint's
    ``dataset_meta``, if any, becomes ``model.dataset_meta``.
    """
    from mmengine.runner.checkpoint import (_load_checkpoint,
                                            _load_checkpoint_to_model)

    from .. import checkpoint_format
    from ..config_injection import LAYOUT_KEY
    state = _load_checkpoint(checkpoint, map_location='cpu')
    layout = cfg.get(LAYOUT_KEY) or checkpoint_format.auxiliary_layout(
        cfg.model.get('auxiliary_head'))
    checkpoint_format.read_plain(state, model, layout)
    _load_checkpoint_to_model(model, state)
    meta = state.get('meta') or {}
    if 'dataset_meta' in meta:
        model.dataset_meta = meta['dataset_meta']


def load_model(config: str, checkpoint: str, device: str = 'cpu',
               cfg_options: Optional[dict] = None):
    """Build the model of ``config`` (CT head included) and load weights.

    A config that uses the CT fragment (``ct_head`` key) gets its CT head
    added exactly as :class:`ct_mmseg.CTRunner` adds it at training time, so
    the projection heads' weights in the checkpoint have somewhere to go
    (:func:`load_weights`).

    Returns:
        tuple: (model in eval mode, the Config used).
    """
    from mmengine.config import Config
    from mmseg.apis import init_model

    from ..config_injection import add_ct_to_config

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('ct_head') is not None:
        add_ct_to_config(cfg)
    # init_model does not call init_weights, so no pretrained weights are
    # downloaded; the checkpoint provides every weight.
    model = init_model(cfg, None, device=device)
    load_weights(model, cfg, checkpoint)
    return model, cfg


def find_ct_head(model):
    """The model's ContrastiveTransformerHead, or None for a baseline."""
    from ..models import ContrastiveTransformerHead
    return next((m for m in model.modules()
                 if isinstance(m, ContrastiveTransformerHead)), None)


def _annotations_first(pipeline, split):
    """``pipeline`` (list of transform dicts) with ``LoadAnnotations``
    moved right after ``LoadImageFromFile``."""
    if any(t['type'] == 'TestTimeAug' for t in pipeline):
        raise ValueError(f'{split}_dataloader uses TestTimeAug; pick a split '
                         'with a plain pipeline')
    pipeline = list(pipeline)
    types = [t['type'] for t in pipeline]
    if 'LoadAnnotations' not in types:
        raise ValueError(f'{split}_dataloader pipeline has no LoadAnnotations')
    load_ann = pipeline.pop(types.index('LoadAnnotations'))
    types.remove('LoadAnnotations')
    pipeline.insert(types.index('LoadImageFromFile') + 1, load_ann)
    return pipeline


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
    dataset_cfg['pipeline'] = _annotations_first(dataset_cfg['pipeline'],
                                                 split)
    return DATASETS.build(dataset_cfg)


def backbone_stages(model, cfg, head):
    """(in_index, strides) of the stages to show.

    A CT model: the stages its head uses, with the head's strides. A baseline:
    every 4-D backbone output, strides measured the way the CT fragment
    measures them (``infer_backbone_stages``), so both models of a comparison
    cut the GT the same way.
    """
    if head is not None:
        return list(head.in_index), list(head.strides)
    from ..config_injection import infer_backbone_stages
    channels, strides = infer_backbone_stages(cfg.model.backbone)
    return list(range(len(channels))), strides


def ignore_index_of(model, head) -> int:
    """The GT label that marks no class: the CT head's, else the decode
    head's (the last one of a cascade), else MMSeg's default 255."""
    if head is not None:
        return head.ignore_index
    decode = model.decode_head
    if isinstance(decode, torch.nn.ModuleList):
        decode = decode[-1]
    return getattr(decode, 'ignore_index', 255)


def _resolve_space(space, head, name):
    """'projection' or 'backbone' for ``space`` ('auto' picks by head)."""
    if space == 'auto':
        space = 'projection' if head is not None else 'backbone'
    if space == 'projection' and head is None:
        raise ValueError(f'{name}: --space projection needs a model with a '
                         'ContrastiveTransformerHead')
    return space


def _stage_maps(model, head, data, space, in_index):
    """Embed one dataset item.

    Returns:
        tuple: gt (1, H, W) and, per shown stage, unit-norm token maps
        (1, D, h, w).
    """
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        False)
    gt = batch['data_samples'][0].gt_sem_seg.data.reshape(
        1, *batch['data_samples'][0].gt_sem_seg.data.shape[-2:])
    feats = model.backbone(batch['inputs'])
    feats = [f for f in feats if isinstance(f, torch.Tensor) and f.dim() == 4]
    if space == 'projection':
        return gt, head.forward(feats)  # already L2-normalised
    return gt, [F.normalize(feats[j].float(), dim=1) for j in in_index]


def _pure_tokens(emb, stride, gt, num_classes, ignore_index, generator,
                 image):
    """The pure-patch tokens of one stage map ``emb`` (1, D, h, w).

    Returns:
        list[Tensor]: random keys (n,), tokens (n, D), labels (n,) and
        positions (n, 3) of image index ``image``.
    """
    from ..core import patch_masks
    h, w = emb.shape[-2:]
    masks = patch_masks(gt.to(emb.device).long(), stride, (h, w), num_classes,
                        ignore_index)
    index = masks.positive.any(0).nonzero().squeeze(1)
    labels = masks.positive[:, index].float().argmax(0)
    keys = torch.rand(index.numel(), generator=generator)
    tokens = emb[0].flatten(1).t()[index].float().cpu()
    positions = torch.stack([torch.full_like(index, image), index // w,
                             index % w], 1).cpu()
    return [keys, tokens, labels.cpu(), positions]


def bottom_k_per_class(pool, num_classes, k):
    """Keep, per class, the ``k`` entries with the smallest random key.

    Applied after every image, this is uniform sampling without replacement
    over all images seen, in bounded memory. ``pool`` is [keys (n,),
    tokens (n, D), labels (n,), positions (n, 3)].
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


def _in_reading_order(stage, stride, space, pool):
    """A :class:`StageTokens` of ``pool``, sorted by (image, row, column)."""
    _, tokens, labels, positions = pool
    order = torch.argsort(positions[:, 0] * 10**8 + positions[:, 1] * 10**4 +
                          positions[:, 2])
    return StageTokens(stage, stride, space, tokens[order], labels[order],
                       positions[order])


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
    head = find_ct_head(model)
    space = _resolve_space(space, head, name)
    in_index, strides = backbone_stages(model, cfg, head)
    num_classes = len(dataset.metainfo['classes'])
    ignore_index = ignore_index_of(model, head)
    # one generator per stage, seeded by (seed, backbone output index): a
    # stage's draw depends only on its GT grid, not on which other stages
    # are shown, so two models that see the same GT draw the same patches
    generators = [torch.Generator().manual_seed(seed * 1000 + stage)
                  for stage in in_index]
    # per stage: running bottom-k pools (keys, tokens, labels, positions)
    pools: List[Optional[List[torch.Tensor]]] = [None] * len(in_index)
    count = min(num_images, len(dataset))
    if count == 0:
        raise ValueError('the dataset is empty')
    for i in range(count):
        gt, maps = _stage_maps(model, head, dataset[i], space, in_index)
        for s, (emb, stride) in enumerate(zip(maps, strides)):
            new = _pure_tokens(emb, stride, gt, num_classes, ignore_index,
                               generators[s], i)
            if pools[s] is not None:
                new = [torch.cat([a, b]) for a, b in zip(pools[s], new)]
            pools[s] = bottom_k_per_class(new, num_classes, max_per_class)
    space_name = SPACE_PROJECTION if space == 'projection' else SPACE_BACKBONE
    result = ModelTokens(name, space_name, tuple(dataset.metainfo['classes']))
    result.stages = [_in_reading_order(stage, stride, space_name, pool)
                     for stage, stride, pool in zip(in_index, strides, pools)]
    return result
