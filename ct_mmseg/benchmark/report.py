"""What the benchmark prints and writes: the comparison table, JSON, and the
sweep's CSV / Markdown tables, ratios and plot."""
import csv
import json
import os
import os.path as osp

import torch

from ..configs import configs_dir
from .ratios import sweep_ratios
from .timing import device_name

# label, key in a model's entry, key in the ratios (None: no ratio shown)
RESULT_ROWS = [
    ('step time, median (ms)', 'step_ms_median', 'step_time'),
    ('step CPU time, median (ms)', 'step_cpu_ms_median', 'step_cpu_time'),
    ('step peak above start (MB)', 'step_peak_bytes', 'memory_step_peak'),
    ('resident: params+buffers+optim (MB)', 'resident_bytes', None),
    ('peak total (MB)', 'total_bytes', 'memory_total'),
    ('inference FLOPs (G, 1 image)', 'inference_flops', 'inference_flops'),
    ('inference params (M)', 'inference_params', 'inference_params'),
    ('all params (M)', 'params_total', None)]


def config_label(path):
    """``path`` relative to the folder that holds the CT ``configs/`` (the
    repository in a checkout)."""
    return osp.relpath(osp.abspath(path), osp.dirname(configs_dir()))


def _print_header(result):
    r = result['ratios']
    print(f"\nconfig {result['config']}  device {result['device']}  "
          f"{result['img_size']} px, batch {result['batch_size']}, "
          f"{result['dtype']}, {result['steps']} steps each, interleaved")
    if result.get('reference') == 'ct':
        print("'baseline' below is CT at the config's settings, 'CT' is CT "
              f"with {result.get('ct_options')}")
    if r.get('step_time_paired') is not None:
        print(f"step time CT/base, median over the interleaved pairs: "
              f"{r['step_time_paired']:.4f}")
    if r.get('step_time_paired_ci95'):
        mean, low, high = r['step_time_paired_ci95']
        print(f"step {'CPU ' if result['device'].startswith('cpu') else ''}"
              f"time CT/base, mean over the pairs: {mean:.4f} "
              f"[95 % CI {low:.4f}, {high:.4f}]")


def _print_table(b, c, r):
    print(f"{'':38s}{'baseline':>14s}{'CT':>14s}{'CT/base':>10s}")
    for label, key, rkey in RESULT_ROWS:
        if b.get(key) is None:
            continue
        scale = 2**20 if 'bytes' in key else 1e9 if 'flops' in key else \
            1e6 if 'params' in key else 1
        rv = r.get(rkey) if rkey else None
        print(f'{label:38s}{b[key] / scale:14.2f}{c[key] / scale:14.2f}'
              f"{(f'{rv:.4f}' if rv is not None else ''):>10s}")


def _print_profile(prof):
    print(f"\nCT head alone on this batch's backbone features: "
          f"{prof['fwd_bwd_ms_median']} ms forward + backward, peak "
          f"{prof['step_peak_bytes'] / 2**20:.1f} MB above the features "
          f"({prof['feature_bytes'] / 2**20:.1f} MB), "
          f"{prof['kernel_like_ops']} kernel-like ops")
    print(prof['top_ops'])


def print_result(result):
    """Print the settings, the paired ratio, the table baseline | CT |
    CT/base and, with ``--profile``, the CT head alone."""
    _print_header(result)
    _print_table(result['baseline'], result['ct'], result['ratios'])
    print('inference logits identical: '
          f"{result['inference_logits_identical']}")
    if result.get('ct_head_profile'):
        _print_profile(result['ct_head_profile'])


def write_json(result, path):
    """Write ``result`` to ``path`` (nothing when ``path`` is empty)."""
    if not path:
        return
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'written: {path}')


def _markdown_rows(rows, keys):
    """Markdown table lines: header, rule, one line per row."""
    return ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)] + [
        '| ' + ' | '.join(str(r[k]) for k in keys) + ' |' for r in rows]


def write_sweep(rows, args, device):
    """``sweep.csv``, ``sweep.md``, ``sweep.json``, ``sweep_ratios.md``
    (ratios also printed) and ``sweep.png`` into ``args.work_dir``."""
    keys = list(rows[0])
    with open(osp.join(args.work_dir, 'sweep.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f'CT head alone, loss forward + backward, batch '
             f'{args.batch_size}, device {device_name(device)}, torch '
             f'{torch.__version__}, config '
             f'`{config_label(args.config)}`.', ''] + \
        _markdown_rows(rows, keys)
    with open(osp.join(args.work_dir, 'sweep.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    write_json(dict(rows=rows, device=device_name(device),
                    torch=torch.__version__),
               osp.join(args.work_dir, 'sweep.json'))
    ratios = sweep_ratios(rows)
    if ratios:
        with open(osp.join(args.work_dir, 'sweep_ratios.md'), 'w') as f:
            f.write('\n'.join(_markdown_rows(ratios, list(ratios[0]))) +
                    '\n')
        print('\n'.join(f"{r['what']}: {r['img_size']} px, "
                        f"k={r['classes_present']}, {r['which']}: time "
                        f"{r['time_ratio']}, memory {r['memory_ratio']}"
                        for r in ratios))
    plot_sweep(rows, args.batch_size, device,
               osp.join(args.work_dir, 'sweep.png'))


def plot_sweep(rows, batch_size, device, path):
    """Time and memory against image size, one line per (loss, K, classes
    present) of the bounded head; markers: K, line style: loss, colour:
    classes present."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the env
        print('matplotlib missing: no plot')
        return
    bounded = [r for r in rows if r['variant'] == 'bounded']
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    lines = sorted({(r['loss'], r['dataset_classes'], r['classes_present'])
                    for r in bounded})
    cmap = plt.get_cmap('viridis')
    ks = sorted({k for _, _, k in lines})
    markers = {K: m for K, m in zip(sorted({K for _, K, _ in lines}),
                                    'os^D')}
    for loss, K, k in lines:
        pts = sorted((r for r in bounded if (r['loss'], r['dataset_classes'],
                                              r['classes_present']) ==
                      (loss, K, k)), key=lambda r: r['img_size'])
        x = [r['img_size'] for r in pts]
        style = dict(linestyle='-' if loss == 'cl' else '--',
                     marker=markers[K], color=cmap(ks.index(k) /
                                                   max(len(ks) - 1, 1)),
                     label=f'{loss}, K={K}, present={k}')
        axes[0].plot(x, [r['fwd_bwd_ms'] for r in pts], **style)
        axes[1].plot(x, [r['peak_minus_feature_grad_mb'] for r in pts],
                     **style)
    for ax, title in zip(axes, ('time, forward + backward (ms)',
                                'peak memory above input and feature '
                                'gradient (MB)')):
        ax.set_xlabel('image size (px)')
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle('CT head alone: dataset classes K x classes present x size '
                 f'x loss (batch {batch_size}, {device_name(device)}); '
                 'markers: K, line style: loss, colour: classes present')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
