"""Statistics of a study, and of its report: means, sample std (ddof=1),
t confidence intervals and the paired / Welch t-tests of an arm against its
baseline (:func:`compare`, giving a :class:`Comparison`).

Values are plain ``Sequence[float]`` or ``{seed: value}`` dicts; results are
floats or None where undefined (too few values). scipy is imported only by
the tests and intervals that need it.
"""
import math
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

CONFIDENCE = 0.95


def mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def sample_std(values: Sequence[float]) -> Optional[float]:
    """Standard deviation with Bessel's correction (ddof=1); None for
    fewer than two values."""
    if len(values) < 2:
        return None
    m = mean(values)
    return math.sqrt(sum((v - m)**2 for v in values) / (len(values) - 1))


def mean_iou(iou: Dict[str, Optional[float]],
             exclude: Sequence[str] = ()) -> Optional[float]:
    """Mean IoU over the classes not in ``exclude``; a class with no IoU
    (None or NaN: absent from labels and predictions) is skipped, as MMSeg
    does. None if no class is left."""
    kept = [v for c, v in iou.items() if c not in exclude and v is not None
            and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


def mean_std(values: Sequence[Optional[float]]):
    """(mean, sample std, n) of the finite values; None where undefined."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return mean(kept), sample_std(kept), len(kept)


@dataclass
class Comparison:
    """An arm's mean mIoU minus its baseline's, with a CI and a t-test."""
    test: str  # 'paired', 'welch' or 'none'
    diff: Optional[float]
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    t: Optional[float] = None
    df: Optional[float] = None
    p: Optional[float] = None
    note: str = ''

    @property
    def test_label(self) -> str:
        """The Test column: which test, its df, and why it has none."""
        if self.test == 'paired':
            label = f'paired t, df={self.df:g}'
        elif self.test == 'welch':
            label = 'Welch t, df=' + ('n/a' if self.df is None
                                      else f'{self.df:.2f}')
        else:
            label = 'none'
        return f'{label} ({self.note})' if self.note else label


def t_half_width(values: Sequence[float],
                 confidence: float = CONFIDENCE) -> float:
    """Half width of the t confidence interval of the mean of ``values``
    (n >= 2): t_{(1 + confidence) / 2, n - 1} * sd / sqrt(n)."""
    from scipy import stats
    quantile = (1 + confidence) / 2
    return float(stats.t.ppf(quantile, len(values) - 1)) * \
        sample_std(values) / math.sqrt(len(values))


def finite_or_none(value) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def compare(arm: Dict[int, float], baseline: Dict[int, float],
            confidence: float = CONFIDENCE) -> Comparison:
    """Difference of mean mIoU (arm - baseline), its confidence interval and
    the two-sided p-value, from ``{seed: mIoU}`` of the two arms.

    * At least two seeds in common: the common seeds pair up (same initial
      weights, data order and random stream but for CT), so a **paired
      t-test** on their differences d_s: diff = mean(d),
      t = mean(d) / (sd(d) / sqrt(n)), df = n - 1 (``scipy.stats.ttest_rel``).
      Seeds only one arm ran are left out (named in the note).
    * Otherwise (n >= 2 in each): **Welch's t-test**,
      se = sqrt(s_a^2 / n_a + s_b^2 / n_b), t = diff / se, and the
      Welch-Satterthwaite df = se^4 / ((s_a^2/n_a)^2 / (n_a - 1) +
      (s_b^2/n_b)^2 / (n_b - 1)) (``scipy.stats.ttest_ind``,
      ``equal_var=False``).

    The interval is diff +- t_{(1 + confidence) / 2, df} * se.
    """
    from scipy import stats
    a = [arm[s] for s in sorted(arm)]
    b = [baseline[s] for s in sorted(baseline)]
    diff = mean(a) - mean(b) if a and b else None
    quantile = (1 + confidence) / 2
    seeds = sorted(set(arm) & set(baseline))
    if len(seeds) >= 2:
        unpaired = sorted(set(arm) ^ set(baseline))
        note = f'seeds {",".join(map(str, unpaired))} unpaired, left ' \
            'out' if unpaired else ''
        a = [arm[s] for s in seeds]
        b = [baseline[s] for s in seeds]
        d = [x - y for x, y in zip(a, b)]
        diff = mean(d)
        df = len(d) - 1
        se = sample_std(d) / math.sqrt(len(d))
        if se == 0:
            return Comparison('paired', diff, diff, diff, None, df, None,
                              '; '.join(filter(None, [
                                  'differences all equal: no t-test',
                                  note])))
        test = stats.ttest_rel(a, b)
        half = t_half_width(d, confidence)
        return Comparison('paired', diff, diff - half, diff + half,
                          finite_or_none(test.statistic), df,
                          finite_or_none(test.pvalue), note)
    if len(a) < 2 or len(b) < 2:
        return Comparison('none', diff, note='needs >= 2 seeds in each arm')
    va = sample_std(a)**2 / len(a)
    vb = sample_std(b)**2 / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return Comparison('welch', diff, diff, diff, None, None, None,
                          'no spread in either arm: no t-test')
    test = stats.ttest_ind(a, b, equal_var=False)
    df = (va + vb)**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(quantile, df)) * se
    return Comparison('welch', diff, diff - half, diff + half,
                      finite_or_none(test.statistic), df,
                      finite_or_none(test.pvalue))
