"""The cosine table of labelled patch tokens: per stage and class, the mean
intra-class and inter-class cosine similarity (``similarity.csv`` and
``similarity.md``), from :class:`~ct_mmseg.visualisation.embeddings.
ModelTokens`."""
import csv
import math
import os.path as osp
from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F

from .embeddings import ModelTokens

CSV_FIELDS = ['model', 'space', 'stage', 'stride', 'cls', 'n', 'intra',
              'inter', 'gap']
MARKDOWN_HEAD = [
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


def class_similarity(tokens: torch.Tensor, labels: torch.Tensor,
                     num_classes: int) -> List[Dict[str, float]]:
    """Mean intra- and inter-class cosine similarity, per class.

    ``intra`` is the mean of ``cos(x_i, x_j)`` over the pairs ``i != j`` of
    the class (NaN with fewer than 2 tokens); ``inter`` the mean over the
    pairs of one token of the class and one of any other class (NaN when
    either side is empty). Rows are normalised here, so any tokens work.

    Args:
        tokens (Tensor): (n, D).
        labels (Tensor): (n,) class ids.

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


def _mean_row(per_class):
    """``n`` summed, ``intra`` and ``inter`` averaged over the classes that
    have a value (unweighted)."""
    vals = {k: [r[k] for r in per_class if not math.isnan(r[k])]
            for k in ('intra', 'inter')}
    return dict(n=sum(r['n'] for r in per_class),
                intra=sum(vals['intra']) / len(vals['intra'])
                if vals['intra'] else math.nan,
                inter=sum(vals['inter']) / len(vals['inter'])
                if vals['inter'] else math.nan)


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
            where = dict(model=model.name, space=st.space, stage=st.stage,
                         stride=st.stride)
            rows += [dict(where, cls=name, **r)
                     for name, r in zip(model.classes, per_class)]
            rows.append(dict(where, cls='(mean over classes)',
                             **_mean_row(per_class)))
    return rows


def _fmt(value):
    return '—' if math.isnan(value) else f'{value:.3f}'


def write_tables(rows: List[dict], out_dir: str) -> str:
    """Write ``similarity.csv`` and ``similarity.md``; return the Markdown."""
    with open(osp.join(out_dir, 'similarity.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in rows:
            writer.writerow(dict(r, gap=r['intra'] - r['inter']))
    lines = list(MARKDOWN_HEAD)
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
