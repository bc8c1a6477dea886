"""What Contrastive Transformer costs: training step, memory, inference.

Default mode: one MMSeg config is built twice in one process, the baseline
(the config's own ``model``) and the CT model (the config after
:func:`ct_mmseg.config_injection.add_ct_to_config`), with identical weights
for every shared module. Their training steps are timed interleaved
(A B B A ...), the peak memory of a step and the inference cost measured;
the figures and the ratios CT / baseline are printed and written as JSON to
``--out``. ``--sweep`` measures the CT head alone across image sizes x
numbers of classes present and writes a CSV and Markdown table and a PNG
plot into ``--work-dir``. How each figure is measured:
:mod:`ct_mmseg.benchmark`.

Examples::

    # the target setting (GPU)
    python tools/benchmark_ct.py --dtype bf16 --out work_dirs/bench/bf16.json
    # a CPU-sized run on the narrow demo Swin
    python tools/benchmark_ct.py \\
        configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py \\
        --img-size 256 --batch-size 4 --steps 10 --threads 1 \\
        --out work_dirs/bench/cpu.json
    # CT alone across image sizes and classes present
    python tools/benchmark_ct.py --sweep --batch-size 2 \\
        --work-dir work_dirs/bench/sweep
"""
import argparse
import os.path as osp
import sys
import warnings

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402

from ct_mmseg.benchmark import benchmark, sweep  # noqa: E402
from ct_mmseg.benchmark.full_step import DTYPES  # noqa: E402

DEFAULT_CONFIG = osp.join(
    REPO, 'configs', 'ct', 'swin-tiny_upernet_ct_4xb4-80k_potsdam-512x512.py')


def add_sweep_args(parser):
    """The ``--sweep`` options (CT head alone)."""
    sweep = parser.add_argument_group('sweep (CT head alone)')
    sweep.add_argument('--sweep', action='store_true')
    sweep.add_argument('--work-dir', default='work_dirs/benchmark_ct_sweep')
    sweep.add_argument('--sizes', type=int, nargs='+',
                       default=[256, 512, 768, 1024])
    sweep.add_argument('--classes', type=int, nargs='+',
                       default=[2, 6, 12],
                       help='numbers of classes present in the batch GT')
    sweep.add_argument('--dataset-classes', type=int, nargs='+',
                       default=[6, 19, 150],
                       help="the dataset's class counts K to build the head "
                       'with (6 Potsdam, 19 Cityscapes, 150 ADE20K)')
    sweep.add_argument('--losses', nargs='+', default=['cl', 'infonce'],
                       choices=('cl', 'infonce'))
    sweep.add_argument('--repeats', type=int, default=3,
                       help='timed repeats per point (median)')
    sweep.add_argument('--sweep-unbounded', action='store_true',
                       help='also run the head with no num_samples bound')
    sweep.add_argument('--unbounded-max-size', type=int, default=512,
                       help='largest image size for the unbounded head')


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='MMSeg config (with or without the CT fragment)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='override config keys, as in '
                        "MMSeg's tools/train.py")
    parser.add_argument('--img-size', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--classes-per-image', type=int, default=8,
                        help='classes in each synthetic GT mask (a handful, '
                        'as in real batches; see realistic_gt)')
    parser.add_argument('--ct-mode', choices=('cl', 'infonce'), default=None,
                        help="override ct_head.loss_decode.mode")
    parser.add_argument('--ct-options', nargs='+', action=DictAction,
                        default={}, help='ct_head options of the CT model, '
                        'e.g. memory_size=512 positive_purity=0.75')
    parser.add_argument('--against', choices=('baseline', 'ct'),
                        default='baseline', help="reference model: the "
                        "baseline, or CT at the config's settings")
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32',
                        help='autocast dtype of the training step')
    parser.add_argument('--steps', type=int, default=20,
                        help='timed steps per model (0: skip the timing)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps per model first')
    parser.add_argument('--device', default=None,
                        help='default: cuda when available, else cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    parser.add_argument('--profile', action='store_true',
                        help='also profile the CT head alone on the '
                        "backbone's features of this batch")
    parser.add_argument('--out', default=None, help='JSON file to write')
    add_sweep_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.logging import MMLogger
    # a quiet current logger: no per-parameter optimizer lines
    MMLogger.get_instance('benchmark_ct', log_level='WARNING')
    from mmseg.utils import register_all_modules
    register_all_modules()
    if args.sweep:
        return sweep(args)
    return benchmark(args)


if __name__ == '__main__':
    main()
