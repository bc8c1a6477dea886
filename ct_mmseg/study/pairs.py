"""Pairs: each CT arm next to its baseline, seed by seed and class by class.

The table (:mod:`.table`) gives one line per arm. This page gives what a
reader needs to judge a paired comparison: per matched seed the two mIoUs
and their difference, per class the mean paired IoU difference with its
confidence interval (exploratory: no correction for multiplicity), the
correlation of the two arms across seeds and the sd of the differences
(what the paired interval's width comes from), and how many runs never
predicted a class (``prediction`` pixel count 0: an IoU of 0 that means
"never predicted", not "predicted wrongly").

Only seeds whose two runs were made on the same machine pair up (the same
rule as :func:`~ct_mmseg.study.table.compare_on_one_machine`). Values in
the Markdown are percentage points.
"""
import statistics
from typing import Dict, List, Optional, Sequence

from .spec import Study
from .statistics import compare, mean_iou, sample_std
from .table import run_machine


def matched_seeds(arm: Dict[int, dict], baseline: Dict[int, dict]
                  ) -> List[int]:
    """Seeds both arms finished on the same machine, ascending."""
    return [s for s in sorted(set(arm) & set(baseline))
            if run_machine(arm[s]) == run_machine(baseline[s])]


def correlation(a: List[float], b: List[float]) -> Optional[float]:
    """Pearson's r of two equally long lists (None: n < 3 or a constant)."""
    if len(a) < 3:
        return None
    try:
        return statistics.correlation(a, b)
    except statistics.StatisticsError:  # a constant list
        return None


def never_predicted(runs: List[dict], name: str) -> Optional[int]:
    """How many of ``runs`` predicted no pixel of class ``name`` (None when
    a run has no pixel counts)."""
    counts = [(r.get('pixels') or {}).get('prediction', {}).get(name)
              for r in runs]
    if any(c is None for c in counts):
        return None
    return sum(c == 0 for c in counts)


def _pp(value: Optional[float], sign: bool = True) -> str:
    if value is None:
        return 'n/a'
    return f'{100 * value:+.2f}' if sign else f'{100 * value:.2f}'


def pair_lines(arm: str, base: str, arm_runs: Dict[int, dict],
               base_runs: Dict[int, dict], classes: List[str],
               exclude: Sequence[str] = ()) -> List[str]:
    """Markdown section of one arm against its baseline; the mIoU of a run
    is the mean IoU over ``classes`` not in ``exclude``, as in the table."""
    seeds = matched_seeds(arm_runs, base_runs)
    arm_miou = {s: mean_iou(arm_runs[s]['iou'], exclude) for s in seeds}
    base_miou = {s: mean_iou(base_runs[s]['iou'], exclude) for s in seeds}
    seeds = [s for s in seeds
             if arm_miou[s] is not None and base_miou[s] is not None]
    lines = [f'## {arm} − {base}', '']
    if not seeds:
        return lines + ['No matched pair (same seed, same machine).', '']
    a = [arm_miou[s] for s in seeds]
    b = [base_miou[s] for s in seeds]
    diffs = [x - y for x, y in zip(a, b)]
    overall = compare(dict(zip(seeds, a)), dict(zip(seeds, b)))
    r = correlation(a, b)
    lines += [
        f'{len(seeds)} matched pairs (seeds {",".join(map(str, seeds))}). '
        f'Δ mIoU {_pp(overall.diff)} [{_pp(overall.ci_low)}, '
        f'{_pp(overall.ci_high)}] (95 % CI, paired t), sd of the '
        f'differences {_pp(sample_std(diffs), False)}, correlation of the '
        f'two arms across seeds r = '
        + ('n/a' if r is None else f'{r:+.2f}') + '.', '',
        '| seed | ' + base + ' | ' + arm + ' | Δ | '
        + ' | '.join(f'Δ {c}' for c in classes) + ' |',
        '|---:|---:|---:|---:|' + '---:|' * len(classes)]
    for s in seeds:
        per_class = []
        for c in classes:
            x, y = arm_runs[s]['iou'].get(c), base_runs[s]['iou'].get(c)
            per_class.append('n/a' if x is None or y is None
                             else _pp(x - y))
        lines.append(f'| {s} | {_pp(base_miou[s], False)} | '
                     f'{_pp(arm_miou[s], False)} | '
                     f'{_pp(arm_miou[s] - base_miou[s])} | '
                     + ' | '.join(per_class) + ' |')
    lines += ['', '| class | Δ IoU [95 % CI] | p | runs never predicting it '
              f'({base} / {arm}) |', '|---|---|---:|---|']
    for c in classes:
        pairs = [s for s in seeds if arm_runs[s]['iou'].get(c) is not None
                 and base_runs[s]['iou'].get(c) is not None]
        cmp = compare({s: arm_runs[s]['iou'][c] for s in pairs},
                      {s: base_runs[s]['iou'][c] for s in pairs})
        nb = never_predicted([base_runs[s] for s in seeds], c)
        na = never_predicted([arm_runs[s] for s in seeds], c)
        never = 'n/a' if nb is None or na is None else \
            f'{nb} / {na} of {len(seeds)}'
        p = 'n/a' if cmp.p is None else f'{cmp.p:.3f}'
        lines.append(f'| {c} | {_pp(cmp.diff)} [{_pp(cmp.ci_low)}, '
                     f'{_pp(cmp.ci_high)}] | {p} | {never} |')
    return lines + ['']


def pairs_markdown(study: Study, results: Dict[str, Dict[int, dict]],
                   exclude: Optional[Sequence[str]] = None) -> str:
    """The pairs page of a study (every arm that names a baseline);
    ``exclude``: classes left out of the mIoU (default: the study's)."""
    exclude = list(study.exclude_classes if exclude is None else exclude)
    lines = [f'# Matched pairs of study {study.name} ({study.split} split)',
             '', 'Percentage points; mIoU over the classes' + (
                 f' but {", ".join(exclude)}' if exclude else '') + '. '
             'Per-class intervals are exploratory '
             '(no correction for multiplicity). Written by '
             '`python tools/run_study.py <spec> --table-only`.', '']
    for arm in study.arms:
        if arm.baseline is None:
            continue
        runs, base = results.get(arm.name, {}), \
            results.get(arm.baseline, {})
        classes = next((r['classes'] for r in runs.values()), [])
        lines += pair_lines(arm.name, arm.baseline, runs, base, classes,
                            exclude)
    return '\n'.join(lines)
