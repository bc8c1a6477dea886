"""``--sweep``: the CT head alone across image sizes, classes present,
dataset class counts K and losses.

The head's loss forward + backward runs on fixed backbone-shaped features
(the config's CT head channels and strides) with synthetic GT holding
exactly k classes (:func:`~ct_mmseg.benchmark.synthetic_gt.realistic_gt`);
``--sweep-unbounded`` adds the same head with no ``num_samples`` bound
(every eligible token drawn, as in the authors' CL) for comparison.
"""
import os

import torch

from .memory import head_peak_bytes, max_rss_mb
from .models import ct_head_config, load_config
from .report import write_sweep
from .synthetic_gt import make_head_samples, realistic_gt
from .timing import head_step, median_ms, pick_device, timed


def sweep_features(batch, size, channels, strides, generator, device):
    """Random features, per stage (B, C, ceil(size / s), ceil(size / s)),
    that require a gradient."""
    return [torch.randn(batch, c, -(-size // s), -(-size // s),
                        generator=generator).to(device).requires_grad_()
            for c, s in zip(channels, strides)]


def sweep_points(args, k, size, variants):
    """(K, loss, (variant, num_samples)) to measure for k classes present
    at ``size``: K >= k, the unbounded head up to its largest size."""
    for num_classes, mode, (variant, num_samples) in (
            (K, m, v) for K in args.dataset_classes
            for m in args.losses for v in variants):
        if k > num_classes or (variant == 'unbounded' and
                               size > args.unbounded_max_size):
            continue
        yield num_classes, mode, variant, num_samples


def build_head(head_cfg, num_classes, bound, mode, seed, device,
               options=None):
    """The CT head of ``head_cfg`` for K classes, ``bound`` samples and the
    loss ``mode`` (plus head ``options``, a dict), seeded, in train mode on
    ``device``."""
    from mmseg.registry import MODELS
    torch.manual_seed(seed)
    return MODELS.build(dict(
        head_cfg, num_classes=num_classes, num_samples=bound, seed=seed,
        loss_decode=dict(head_cfg.get('loss_decode', {}), mode=mode),
        **(options or {}))).to(device).train()


def measure_head(head, feats, samples, repeats, device):
    """(wall times, CPU times, allocator peak bytes) of the head's step,
    after one warm-up step."""
    step = head_step(head, feats, samples)
    step()  # warm-up
    walls, cpus = zip(*[timed(step, device) for _ in range(repeats)])
    return walls, cpus, head_peak_bytes(step, device)


def sweep_row(point, args, size, k, device, walls, cpus, peak, feats):
    """One row of the sweep table (times in ms, memory in MB)."""
    num_classes, mode, variant, num_samples = point
    feature_bytes = sum(f.numel() * f.element_size() for f in feats)
    tokens = sum(f.shape[0] * f.shape[2] * f.shape[3] for f in feats)
    return dict(variant=variant, loss=mode, device=device.type,
                dataset_classes=num_classes, img_size=size,
                batch_size=args.batch_size, classes_present=k,
                num_samples=num_samples or 'all',
                fwd_bwd_ms=median_ms(walls),
                # process CPU time: on a shared CPU the steadier figure
                # (wall time includes waiting for a core)
                fwd_bwd_cpu_ms=median_ms(cpus),
                peak_mb=round(peak / 2**20, 1),
                feature_mb=round(feature_bytes / 2**20, 1),
                # the features' gradient is part of the peak; in a model the
                # decode head's gradient for the same features is summed
                # into one buffer
                peak_minus_feature_grad_mb=round(
                    (peak - feature_bytes) / 2**20, 1),
                tokens=tokens,
                # meaningful with one point per process only
                process_peak_rss_mb=round(max_rss_mb()))


def sweep(args):
    """Measure every point, print each row, write the tables and the plot
    into ``args.work_dir``.

    Args:
        args (Namespace): ``tools/benchmark_ct.py``'s arguments (config,
            cfg_options, device, seed, batch_size, classes_per_image, sizes,
            classes, dataset_classes, losses, repeats, sweep_unbounded,
            unbounded_max_size, work_dir; optionally ct_options: then every
            point is also measured with these head options, variant
            'options').

    Returns:
        list[dict]: the rows.
    """
    device = pick_device(args.device)
    head_cfg = ct_head_config(load_config(args.config, args.cfg_options))
    variants = [('bounded', head_cfg.num_samples)]
    options = getattr(args, 'ct_options', None) or {}
    if options:  # the same head with the options, measured beside it
        variants.append(('options', head_cfg.num_samples))
    if args.sweep_unbounded:
        variants.append(('unbounded', None))
    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    gen = torch.Generator().manual_seed(args.seed)
    for size in args.sizes:
        feats = sweep_features(args.batch_size, size, head_cfg.in_channels,
                               head_cfg.strides, gen, device)
        max_tokens = max(f.shape[0] * f.shape[2] * f.shape[3] for f in feats)
        for k in args.classes:
            # one GT per (size, k): every dataset K and loss sees the same
            # classes present, relabelled onto the first k ids of each K so
            # that the comparison across K holds the GT fixed
            gt = realistic_gt(args.batch_size, size, max(k, 1),
                              args.classes_per_image, batch_classes=k,
                              generator=gen)
            samples = make_head_samples(gt.to(device))
            for point in sweep_points(args, k, size, variants):
                num_classes, mode, variant, num_samples = point
                head = build_head(head_cfg, num_classes,
                                  num_samples or max_tokens, mode, args.seed,
                                  device,
                                  options if variant == 'options' else None)
                measured = measure_head(head, feats, samples, args.repeats,
                                        device)
                row = sweep_row(point, args, size, k, device, *measured,
                                feats)
                rows.append(row)
                print(', '.join(f'{k_}={v}' for k_, v in row.items()),
                      flush=True)
                del head, measured
    write_sweep(rows, args, device)
    return rows
