"""The mechanism report: what a study's runs did beyond their test mIoU
(CT's mechanism and the validation curves).

For every finished run of a study (``ct_mmseg.study``) this module reads

* from its training log (``<work_dir>/*/vis_data/scalars.json``, written by
  :class:`~ct_mmseg.hooks.ContrastiveTransformerHook`) the means over the
  logged intervals of ``ct/over_clip`` (the fraction of steps whose
  contrastive total was above the clip: with ``clip_mode='clamp'`` the steps
  in which CT sent no gradient at all), ``ct/grad_share`` (CT's share of the
  gradient norm reaching the backbone's stage outputs, ct / (ct + seg); needs
  the head's ``grad_stats=True``) and the two gradient norms;
* optionally, per stage, the mean intra-class and inter-class cosine
  similarity of the backbone's patch tokens on test images (computed by a
  caller-supplied function, e.g.
  :func:`ct_mmseg.study.report_cli.token_cosines`, so that this module stays
  free of model code);

and it summarises them per arm (mean and sample std over seeds) and plots the
validation mIoU curves logged during training (mean and range over seeds).
"""
import csv
import glob
import json
import os
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence

from .statistics import compare, mean, mean_std

TRAINING_KEYS = ('ct/over_clip', 'ct/grad_share', 'ct/grad_norm_ct',
                 'ct/grad_norm_seg')


def training_means(work_dir: str, keys: Sequence[str] = TRAINING_KEYS
                   ) -> Dict[str, Optional[float]]:
    """Mean of each key over the training records of a run's logs.

    Every logged record is already a mean over its logging interval, and
    the intervals are equal, so the mean of the records is the mean over
    steps. A key never logged (a baseline, or no ``grad_stats``) gives None.
    """
    by_step: Dict[int, dict] = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    if 'loss' in record:  # a training record
                        by_step[record.get('step')] = record
    means = OrderedDict()
    for key in keys:
        values = [r[key] for r in by_step.values() if key in r]
        means[key] = mean(values)
    return means


def run_mechanism(result: dict, cosines: Optional[Callable] = None,
                  work_dir: Optional[str] = None) -> dict:
    """One run's mechanism record: training means and token cosines.

    Args:
        result (dict): the run's study result (``work_dir``, ``arm``, ...).
        cosines (callable, optional): ``cosines(work_dir) -> list of
            {stage, intra, inter}`` (per stage, mean over classes).
        work_dir (str, optional): where the run's logs and checkpoint are
            now (default: the result's ``work_dir``, as it was written).
    """
    work_dir = work_dir or result['work_dir']
    record = OrderedDict(arm=result['arm'], seed=result['seed'],
                         mIoU=result.get('mIoU'))
    record.update(training_means(work_dir))
    if cosines is not None:
        for row in cosines(work_dir):
            stage = row['stage']
            record[f's{stage}_intra'] = row['intra']
            record[f's{stage}_inter'] = row['inter']
            record[f's{stage}_gap'] = row['intra'] - row['inter']
    return record


def summarize(records: List[dict]) -> List[dict]:
    """Per arm: mean and sample std over seeds of every numeric field."""
    arms: Dict[str, List[dict]] = OrderedDict()
    for r in records:
        arms.setdefault(r['arm'], []).append(r)
    fields = [k for k in records[0] if k not in ('arm', 'seed')] \
        if records else []
    for r in records:
        fields += [k for k in r if k not in fields and k not in ('arm',
                                                                 'seed')]
    rows = []
    for arm, runs in arms.items():
        row = OrderedDict(arm=arm, n=len(runs))
        for key in fields:
            mean, std, n = mean_std([r.get(key) for r in runs])
            row[key] = (mean, std, n)
        rows.append(row)
    return rows


def _fmt(cell, digits=3) -> str:
    mean, std, n = cell
    if mean is None:
        return '—'
    return f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if std is not None
                                   else '')


def mechanism_markdown(rows: List[dict], columns: Sequence[str],
                       headers: Sequence[str]) -> str:
    """A Markdown table of ``columns`` (mean ± sample std over seeds)."""
    lines = ['| arm | n | ' + ' | '.join(headers) + ' |',
             '|---|---|' + '---|' * len(headers)]
    for row in rows:
        lines.append(f"| {row['arm']} | {row['n']} | " + ' | '.join(
            _fmt(row[c]) if c in row else '—' for c in columns) + ' |')
    return '\n'.join(lines) + '\n'


def write_records(records: List[dict], path: str) -> None:
    fields: List[str] = []
    for r in records:
        fields += [k for k in r if k not in fields]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in records:
            writer.writerow({k: ('' if r.get(k) is None else r.get(k))
                             for k in fields})


def val_curves(results: Dict[str, Dict[int, dict]], metric: str = 'mIoU'
               ) -> Dict[str, List[tuple]]:
    """Per arm: [(step, mean, min, max, n)] of a validation metric."""
    curves = OrderedDict()
    for arm, runs in results.items():
        by_step: Dict[int, List[float]] = {}
        for result in runs.values():
            for record in result.get('val', []):
                if metric in record and record.get('step') is not None:
                    by_step.setdefault(record['step'], []).append(
                        record[metric])
        curves[arm] = [(step, mean(v), min(v), max(v), len(v))
                       for step, v in sorted(by_step.items())]
    return curves


def plot_val_curves(curves: Dict[str, List[tuple]], path: str,
                    title: str = '', metric: str = 'mIoU') -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, points in curves.items():
        if not points:
            continue
        steps = [p[0] for p in points]
        line, = ax.plot(steps, [p[1] for p in points], marker='o', ms=3,
                        label=f'{arm} (n={max(p[4] for p in points)})')
        ax.fill_between(steps, [p[2] for p in points],
                        [p[3] for p in points], color=line.get_color(),
                        alpha=0.15)
    ax.set_xlabel('training iteration')
    ax.set_ylabel(f'val {metric} (%)')
    ax.set_title(title or f'validation {metric}: mean over seeds, band = '
                 'min..max')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def final_val(result: dict, metric: str = 'mIoU') -> Optional[float]:
    """The metric at the last validation of a run (percent, as logged)."""
    records = [r for r in result.get('val', []) if metric in r]
    return records[-1][metric] if records else None


def val_comparisons(results: Dict[str, Dict[int, dict]], reference: str,
                    metric: str = 'mIoU') -> List[dict]:
    """Every arm's final validation metric against ``reference``'s.

    Each arm is paired with the reference on the seeds both have (same data
    order and initialisation), so the test is always the paired t-test of
    :func:`ct_mmseg.study.compare`; this is the evidence on which an option
    may become a default (the test split is never used for that).
    """
    ref = {s: final_val(r, metric) for s, r in results[reference].items()}
    rows = []
    for arm, runs in results.items():
        values = {s: final_val(r, metric) for s, r in runs.items()}
        values = {s: v for s, v in values.items() if v is not None}
        mean, std, n = mean_std(list(values.values()))
        row = OrderedDict(arm=arm, n=n, mean=mean, std=std)
        common = sorted(set(values) & {s for s, v in ref.items()
                                       if v is not None})
        if arm != reference and len(common) >= 2:
            c = compare({s: values[s] for s in common},
                        {s: ref[s] for s in common})
            row.update(seeds=common, diff=c.diff, low=c.ci_low, high=c.ci_high,
                       p=c.p, test=c.test)
        rows.append(row)
    return rows


def val_markdown(rows: List[dict], reference: str, metric: str = 'mIoU'
                 ) -> str:
    def num(v, sign=False):
        return '—' if v is None else (f'{v:+.2f}' if sign else f'{v:.2f}')
    lines = [f'| arm | n | final val {metric} (mean ± sd) | seeds paired | '
             f'diff vs {reference} | 95 % CI | p (paired t) |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        value = num(r['mean']) + (f" ± {r['std']:.2f}" if r['std'] is not None
                                  else '')
        if 'diff' in r:
            lines.append(
                f"| {r['arm']} | {r['n']} | {value} | "
                f"{','.join(map(str, r['seeds']))} | {num(r['diff'], True)} | "
                f"[{num(r['low'], True)}, {num(r['high'], True)}] | "
                f"{'—' if r['p'] is None else format(r['p'], '.3f')} |")
        else:
            lines.append(f"| {r['arm']} | {r['n']} | {value} | | | | |")
    return '\n'.join(lines) + '\n'
