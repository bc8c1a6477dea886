"""The command line of ``tools/run_study.py``: run a study (arms x seeds)
with MMSeg's tools, then print its table.

:func:`main` takes the arguments as a list (``argv``; None: ``sys.argv``)
and returns the exit status, so the command runs in-process too (the tests
call it). See the tool's docstring and ``docs/studies.md``.
"""
import argparse
import os
import os.path as osp
import sys

from .. import study as studies
from .pairs import pairs_markdown


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and test a study (arms x seeds) with MMSeg\'s '
        'tools/train.py and tools/test.py, then print its table.')
    parser.add_argument('spec', help='study file (.yaml, .yml or .json)')
    parser.add_argument('--table-only', action='store_true',
                        help='run nothing: the table of the finished runs')
    parser.add_argument('--work-root',
                        help='replaces the spec\'s work_root (work_dirs: '
                        'checkpoints and logs)')
    parser.add_argument('--output',
                        help='replaces the spec\'s output folder (result '
                        'files and tables)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to every training, after the spec\'s '
                        'own options (so these win), e.g. '
                        'train_cfg.max_iters=2000')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per run; > 1 launches torchrun with '
                        '--launcher pytorch. A config with total_batch_size '
                        'gets train_dataloader.batch_size = total / gpus.')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs executed at the same time (default 1); '
                        'with > 1 each run\'s output goes to '
                        '<work_dir>/study_{train,test}.log')
    parser.add_argument('--gpu-ids', type=int, nargs='+', metavar='ID',
                        help='GPUs to spread the jobs over: job j gets '
                        'ids[j*gpus:(j+1)*gpus] as CUDA_VISIBLE_DEVICES '
                        '(default: the inherited CUDA_VISIBLE_DEVICES)')
    parser.add_argument('--port', type=int, default=29500,
                        help='torchrun master port (--gpus > 1); job j '
                        'uses port + j')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (train.py --amp)')
    parser.add_argument('--no-test', action='store_true',
                        help='only train (no result files, no table)')
    parser.add_argument('--retest', action='store_true',
                        help='test finished runs again (their checkpoints '
                        'must still exist) and rewrite their result files')
    parser.add_argument('--keep-going', action='store_true',
                        help='go on with the next run after a failure')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands, run nothing')
    parser.add_argument('--exclude-classes', nargs='*', metavar='CLASS',
                        help='classes left out of the mIoU (replaces the '
                        'spec\'s exclude_classes; none given: none)')
    parser.add_argument('--paper', action='store_true',
                        help='add the CT paper\'s published Table 1 rows '
                        '(Potsdam studies)')
    parser.add_argument('--md', metavar='FILE',
                        help='Markdown table file (default: '
                        '<output>/table.md)')
    parser.add_argument('--pairs', metavar='FILE',
                        help='Markdown page of the matched pairs (default: '
                        '<output>/pairs.md)')
    parser.add_argument('--csv', metavar='FILE',
                        help='CSV table file (default: <output>/table.csv)')
    args = parser.parse_args(argv)
    if args.gpus < 1 or args.jobs < 1:
        parser.error('--gpus and --jobs must be >= 1')
    if args.gpu_ids and len(args.gpu_ids) < args.jobs * args.gpus:
        parser.error(f'--jobs {args.jobs} x --gpus {args.gpus} needs '
                     f'{args.jobs * args.gpus} --gpu-ids, got '
                     f'{len(args.gpu_ids)}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def warn(message):
        print(message, file=sys.stderr, flush=True)

    try:
        study = studies.load_spec(args.spec, args.work_root, args.output)
        failures = []
        if not args.table_only:
            launch = studies.Launch(
                gpus=args.gpus, jobs=args.jobs, gpu_ids=args.gpu_ids,
                port=args.port, amp=args.amp, no_test=args.no_test,
                retest=args.retest, keep_going=args.keep_going,
                dry_run=args.dry_run)
            failures = studies.run_study(study, launch, args.cfg_options)
            if failures:
                warn('FAILED:\n  ' + '\n  '.join(failures))
            if args.dry_run or args.no_test:
                return 1 if failures else 0
        markdown, table_csv, rows = studies.make_table(
            study, args.exclude_classes, args.paper, warn)
        pairs = pairs_markdown(study, studies.read_results(
            study, lambda message: None), args.exclude_classes)
    except (studies.SpecError, studies.ResultError) as exc:
        warn(f'error: {exc}')
        return 1
    except KeyboardInterrupt:
        warn('interrupted: run the same command again to resume')
        return 130
    if not rows:
        warn(f'error: no finished runs in {study.output}')
        return 1
    print(markdown, end='')
    for path, text in ((args.md or osp.join(study.output, 'table.md'),
                        markdown),
                       (args.csv or osp.join(study.output, 'table.csv'),
                        table_csv),
                       (args.pairs or osp.join(study.output, 'pairs.md'),
                        pairs)):
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    return 1 if failures else 0

