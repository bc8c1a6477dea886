"""CT / baseline ratios and the confidence interval of the paired ratio.

The two steps of a round run back to back, so each round's ratio cancels
slow drift of the machine; the rounds are the samples of a t-interval
(:func:`ct_mmseg.study.statistics.t_half_width`, the study's own).
"""
import statistics

from ..study.statistics import mean, t_half_width


def paired_ratio_interval(base_times, ct_times, level=0.95):
    """Mean of the per-round CT/baseline time ratios and its t-interval.

    The two steps of a round run back to back, so each round's ratio
    cancels slow drift of the machine; the rounds are the samples. On a
    shared CPU a step varies by a few per cent, so a ratio near 1.02 needs
    the interval, not one median, to say which side of a target it is on.

    Returns:
        tuple[float, float, float] | None: (mean, low, high); None with
        fewer than two rounds.
    """
    ratios = [c / b for b, c in zip(base_times, ct_times)]
    if len(ratios) < 2:
        return None
    centre = mean(ratios)
    half = t_half_width(ratios, level)
    return round(centre, 4), round(centre - half, 4), round(centre + half, 4)


def ratio(a, b):
    """a / b rounded to 4 decimals; None when a is None or b is 0/None."""
    return round(a / b, 4) if a is not None and b else None


def step_ratios(base, ct, walls, cpus, device_type):
    """The ratios of the full-step benchmark.

    Args:
        base, ct (dict): the two models' entries (``step_ms_median``,
            ``inference_flops`` ... and, when measured, the memory keys).
        walls, cpus (dict): ``{'baseline'|'ct': [seconds per round]}``.
        device_type (str): 'cpu' or 'cuda'.

    Returns:
        dict: step_time, step_time_paired (median of the per-round ratios),
        step_time_paired_ci95 (CPU time on the CPU, else wall time),
        step_cpu_time, memory_total, memory_step_peak, inference_flops,
        inference_params.
    """
    # the two steps of one round ran back to back: their ratio cancels drift
    paired = [c / b for b, c in zip(walls['baseline'], walls['ct'])]
    # CPU time on the CPU: the steadier figure on a shared machine
    times = cpus if device_type == 'cpu' else walls
    return dict(
        step_time=ratio(ct['step_ms_median'], base['step_ms_median']),
        step_time_paired=round(statistics.median(paired), 4)
        if paired else None,
        step_time_paired_ci95=paired_ratio_interval(times['baseline'],
                                                    times['ct']),
        step_cpu_time=ratio(ct.get('step_cpu_ms_median'),
                            base.get('step_cpu_ms_median')),
        memory_total=ratio(ct.get('total_bytes'), base.get('total_bytes')),
        memory_step_peak=ratio(ct.get('step_peak_bytes'),
                               base.get('step_peak_bytes')),
        inference_flops=ratio(ct['inference_flops'], base['inference_flops']),
        inference_params=ratio(ct['inference_params'],
                               base['inference_params']))


def sweep_ratios(rows):
    """The cost ratios of a sweep: K_max / K_min at the same classes
    present (per loss), InfoNCE / CL (per K) and, when the sweep measured
    head options, options / CT (per loss and K), time and memory."""
    bounded = [r for r in rows if r['variant'] == 'bounded']
    index = {(r['loss'], r['dataset_classes'], r['img_size'],
              r['classes_present']): r for r in bounded}
    ks = sorted({r['dataset_classes'] for r in bounded})
    out = []

    def add(what, which, num, den, size, k):
        # CPU: process CPU time, steadier than wall time on a shared machine
        key = 'fwd_bwd_cpu_ms' if 'cpu' in str(num.get('device', 'cpu')) \
            else 'fwd_bwd_ms'
        out.append(dict(
            what=what, which=which, img_size=size, classes_present=k,
            time_ratio=round(num[key] / den[key], 3),
            memory_ratio=round(num['peak_mb'] / max(den['peak_mb'], 1e-9),
                               3)))
    for (loss, K, size, k), row in sorted(index.items()):
        if K == ks[-1] and len(ks) > 1 and (loss, ks[0], size, k) in index:
            add(f'K={ks[-1]} / K={ks[0]}', loss, row,
                index[(loss, ks[0], size, k)], size, k)
        if loss == 'infonce' and ('cl', K, size, k) in index:
            add('infonce / cl', f'K={K}', row, index[('cl', K, size, k)],
                size, k)
    for r in rows:
        key = (r['loss'], r['dataset_classes'], r['img_size'],
               r['classes_present'])
        if r['variant'] == 'options' and key in index:
            add('options / ct', f"{r['loss']}, K={r['dataset_classes']}", r,
                index[key], r['img_size'], r['classes_present'])
    return out
