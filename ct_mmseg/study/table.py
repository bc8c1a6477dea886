"""The study's table: one :class:`ArmSummary` per arm (seed-averaged class
IoUs, mIoU mean and sample std, the comparison with its baseline), written
as Markdown (:func:`to_markdown`) and CSV (:func:`to_csv`), optionally with
the paper's Table 1 rows (:mod:`ct_mmseg.study.paper`).

:func:`make_table` reads the result files and returns
``(markdown: str, csv: str, rows: List[ArmSummary])``.
"""
import csv
import io
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

from .paper import PAPER, PAPER_EXCLUDED, PAPER_RUNS, POTSDAM_CLASSES
from .results import ResultError, read_results
from .spec import Study
from .statistics import (CONFIDENCE, Comparison, compare, mean, mean_iou,
                         sample_std)


@dataclass
class ArmSummary:
    """A table row: one arm over its finished seeds."""
    arm: str
    config: str
    labels: Dict[str, str]
    seeds: List[int]
    miou: Dict[int, float]  # per seed, classes excluded as the study says
    class_means: Dict[str, Optional[float]]
    miou_all: Dict[int, float]  # per seed, every class (MMSeg's mIoU)
    baseline: Optional[str] = None
    comparison: Optional[Comparison] = None

    @property
    def miou_mean(self):
        return mean(list(self.miou.values()))

    @property
    def miou_std(self):
        return sample_std(list(self.miou.values()))

    @property
    def miou_all_mean(self):
        return mean(list(self.miou_all.values()))

    @property
    def miou_all_std(self):
        return sample_std(list(self.miou_all.values()))


def summarize_study(study: Study, results: Dict[str, Dict[int, dict]],
                    exclude: Optional[Sequence[str]] = None
                    ) -> List[ArmSummary]:
    """One :class:`ArmSummary` per arm with results, each compared with its
    baseline arm (:func:`compare`). ``exclude``: classes left out of the
    mIoU (default: the study's ``exclude_classes``)."""
    exclude = list(study.exclude_classes if exclude is None else exclude)
    classes = None
    rows = OrderedDict()
    for arm in study.arms:
        runs = results.get(arm.name) or {}
        if not runs:
            continue
        for seed, result in runs.items():
            if classes is None:
                classes = list(result['classes'])
                unknown = sorted(set(exclude) - set(classes))
                if unknown:
                    raise ResultError(f'excluded classes {unknown} are not '
                                      f'classes of the results ({classes})')
            elif list(result['classes']) != classes:
                raise ResultError(f'{arm.name} seed {seed}: classes '
                                  f'{result["classes"]} differ from the '
                                  f'other runs\' {classes}')
        miou, miou_all = OrderedDict(), OrderedDict()
        for seed, result in runs.items():
            value = mean_iou(result['iou'], exclude)
            if value is not None:
                miou[seed] = value
            value = mean_iou(result['iou'])
            if value is not None:
                miou_all[seed] = value
        class_means = OrderedDict()
        for name in classes:
            values = [r['iou'][name] for r in runs.values()
                      if r['iou'].get(name) is not None
                      and math.isfinite(r['iou'][name])]
            class_means[name] = mean(values)
        first = next(iter(runs.values()))
        rows[arm.name] = ArmSummary(
            arm=arm.name, config=arm.config, labels=first.get('labels') or {},
            seeds=list(runs), miou=miou, class_means=class_means,
            miou_all=miou_all, baseline=arm.baseline)
    for row in rows.values():
        if row.baseline is not None and row.baseline in rows:
            row.comparison = compare_on_one_machine(
                row, rows[row.baseline], results)
    return list(rows.values())


def run_machine(result: dict) -> Optional[str]:
    """The machine a result file was made on (its ``machine.id``)."""
    return (result.get('machine') or {}).get('id')


def compare_on_one_machine(row: ArmSummary, base: ArmSummary,
                           results: Dict[str, Dict[int, dict]]
                           ) -> Comparison:
    """:func:`compare` of two rows, never pairing a seed whose two runs
    were made on different machines (a config and seed repeat exactly on
    one machine only): such a seed is left out of the arm's values."""
    other = [s for s in row.miou if s in base.miou and
             run_machine(results[row.arm][s]) !=
             run_machine(results[base.arm][s])]
    comparison = compare({s: v for s, v in row.miou.items()
                          if s not in other}, base.miou)
    if other:
        note = f'seeds {",".join(map(str, other))} ran on another machine ' \
            'than the baseline\'s, left out'
        comparison.note = '; '.join(filter(None, [comparison.note, note]))
    return comparison


def table_lines(rows: List[ArmSummary], with_paper: bool) -> List[Any]:
    """The table's rows: ours in spec order; with ``with_paper`` each of the
    paper's rows right under the first of ours with the same model and CT
    loss, and the paper's rows without one of ours at the end."""
    if not with_paper:
        return list(rows)

    def key(labels):
        return labels.get('model'), labels.get('ct_loss')

    papers = {(p['model'], p['ct_loss']): p for p in PAPER}
    out, placed = [], set()
    for row in rows:
        out.append(row)
        paper = papers.get(key(row.labels))
        if paper is not None and key(row.labels) not in placed:
            out.append(paper)
            placed.add(key(row.labels))
    return out + [p for k, p in papers.items() if k not in placed]


def fmt(value: Optional[float], digits: int = 4, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return 'n/a'
    return f'{value:+.{digits}f}' if sign else f'{value:.{digits}f}'


def fmt_p(p: Optional[float]) -> str:
    if p is None:
        return 'n/a'
    return '<0.001' if p < 0.001 else f'{p:.3f}'


def header_note(study: Study, classes: List[str], exclude: Sequence[str],
                with_paper: bool) -> str:
    kept = [c for c in classes if c not in exclude]
    counted = (f'the {len(kept)} classes {", ".join(kept)} '
               f'({", ".join(exclude)} excluded)') if exclude else \
        'all classes'
    note = (
        f'Study {study.name} ({study.source}), {study.split} split. mIoU: '
        f'mean IoU over {counted}, per seed; shown as mean ± sample std (ddof=1) '
        'over the seeds. Class columns: IoU averaged over the seeds. '
        'Values are fractions. ')
    if exclude:
        note += 'mIoU (all): MMSeg\'s mean over all classes. '
    note += (
        f'Δ mIoU: the arm\'s mean mIoU minus its baseline\'s, with a '
        f'{CONFIDENCE:.0%} confidence interval from the t distribution, '
        'and the two-sided p-value of the test named in the last column: '
        'paired t-test (scipy.stats.ttest_rel) when both arms ran the same '
        'seeds, Welch\'s t-test (scipy.stats.ttest_ind, equal_var=False, '
        'Welch–Satterthwaite df) otherwise.')
    if with_paper:
        note += (' Rows marked paper: the CT paper\'s Table 1 '
                 '(arXiv:2303.14806), 5-class mIoU (Clutter excluded) over '
                 '3 runs, its σ of unstated kind.')
    return note


def table_classes(rows: List[ArmSummary]) -> List[str]:
    return list(rows[0].class_means) if rows else list(POTSDAM_CLASSES)


def to_markdown(study: Study, rows: List[ArmSummary],
                exclude: Sequence[str], with_paper: bool = False) -> str:
    classes = table_classes(rows)
    with_all = bool(exclude)
    columns = ['Arm', 'Model', 'Backbone', 'CT loss', 'n (seeds)',
               'mIoU (mean ± std)', *classes] + \
        (['mIoU (all)'] if with_all else []) + \
        ['Baseline', 'Δ mIoU [95% CI]', 'p', 'Test', 'Source']
    align = ['---'] * 5 + ['---:'] * (1 + len(classes) + with_all) + \
        ['---', '---', '---:', '---', '---']
    lines = [header_note(study, classes, exclude, with_paper), '',
             '| ' + ' | '.join(columns) + ' |', '|' + '|'.join(align) + '|']
    for row in table_lines(rows, with_paper):
        if isinstance(row, ArmSummary):
            comparison = row.comparison
            delta = p = test = ''
            if comparison is not None:
                delta = fmt(comparison.diff, sign=True)
                if comparison.ci_low is not None:
                    delta += (f' [{fmt(comparison.ci_low, sign=True)}, '
                              f'{fmt(comparison.ci_high, sign=True)}]')
                p, test = fmt_p(comparison.p), comparison.test_label
            cells = [row.arm, row.labels.get('model', '?'),
                     row.labels.get('backbone', '?'),
                     row.labels.get('ct_loss', '?'),
                     f'{len(row.seeds)} ({",".join(map(str, row.seeds))})',
                     f'{fmt(row.miou_mean)} ± {fmt(row.miou_std)}',
                     *[fmt(row.class_means[c]) for c in classes]] + \
                ([f'{fmt(row.miou_all_mean)} ± {fmt(row.miou_all_std)}']
                 if with_all else []) + \
                [row.baseline or '', delta, p, test, 'ours']
        else:
            cells = ['', row['model'], row['backbone'], row['ct_loss'],
                     str(PAPER_RUNS), f'{fmt(row["miou"])} ± '
                     f'{fmt(row["std"])}',
                     *[fmt(row.get(c)) for c in classes]] + \
                ([''] if with_all else []) + \
                ['', '', '', '', f'paper {row["source"]}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def csv_fields(classes: List[str]) -> List[str]:
    return ['source', 'arm', 'config', 'model', 'backbone', 'ct_loss',
            'num_seeds', 'seeds', 'excluded_classes', 'miou_mean',
            'miou_std', *[f'iou_{c}' for c in classes], 'miou_all_mean',
            'miou_all_std', 'baseline', 'test', 'diff', 'ci_low', 'ci_high',
            't', 'df', 'p_value']


def to_csv(study: Study, rows: List[ArmSummary], exclude: Sequence[str],
           with_paper: bool = False) -> str:
    """One CSV row per table line (``source``: ours / paper); numbers
    unrounded, empty where there is none."""
    def num(value):
        return '' if value is None else repr(float(value))

    classes = table_classes(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_fields(classes),
                            lineterminator='\n')
    writer.writeheader()
    for row in table_lines(rows, with_paper):
        if isinstance(row, ArmSummary):
            c = row.comparison
            record = dict(
                source='ours', arm=row.arm, config=row.config,
                model=row.labels.get('model', ''),
                backbone=row.labels.get('backbone', ''),
                ct_loss=row.labels.get('ct_loss', ''),
                num_seeds=len(row.seeds),
                seeds=' '.join(map(str, row.seeds)),
                excluded_classes=' '.join(exclude),
                miou_mean=num(row.miou_mean), miou_std=num(row.miou_std),
                miou_all_mean=num(row.miou_all_mean),
                miou_all_std=num(row.miou_all_std),
                baseline=row.baseline or '',
                test='' if c is None else c.test,
                diff=num(None if c is None else c.diff),
                ci_low=num(None if c is None else c.ci_low),
                ci_high=num(None if c is None else c.ci_high),
                t=num(None if c is None else c.t),
                df=num(None if c is None else c.df),
                p_value=num(None if c is None else c.p))
            for name in classes:
                record[f'iou_{name}'] = num(row.class_means[name])
        else:
            record = dict(source='paper', model=row['model'],
                          backbone=row['backbone'], ct_loss=row['ct_loss'],
                          num_seeds=PAPER_RUNS,
                          excluded_classes=' '.join(PAPER_EXCLUDED),
                          miou_mean=num(row['miou']),
                          miou_std=num(row['std']))
            for name in classes:
                record[f'iou_{name}'] = num(row.get(name))
        writer.writerow(record)
    return out.getvalue()


def make_table(study: Study, exclude: Optional[Sequence[str]] = None,
               with_paper: bool = False,
               warn: Callable[[str], Any] = print):
    """(markdown, csv) of the study's finished runs."""
    exclude = list(study.exclude_classes if exclude is None else exclude)
    rows = summarize_study(study, read_results(study, warn), exclude)
    if with_paper:
        classes = table_classes(rows)
        if rows and classes != list(POTSDAM_CLASSES):
            raise ResultError(f'the paper\'s rows are Potsdam\'s; these '
                              f'results have the classes {classes}')
        if exclude != PAPER_EXCLUDED:
            warn(f'warning: the paper\'s mIoU excludes {PAPER_EXCLUDED}, '
                 f'ours here excludes {exclude or "nothing"}')
    return (to_markdown(study, rows, exclude, with_paper),
            to_csv(study, rows, exclude, with_paper), rows)
