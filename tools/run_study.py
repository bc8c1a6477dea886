#!/usr/bin/env python
"""Run a study (arms x seeds) with MMSeg's tools, then print its table.

A study is a YAML or JSON file listing arms (an MMSeg config plus optional
cfg-options, and the baseline arm a CT arm is compared with) and seeds; see
``docs/studies.md`` and :func:`ct_mmseg.study.load_spec`. The logic lives in
``ct_mmseg/study/`` (a package, one module per concern).

Each unfinished (arm, seed) run trains with MMSeg's ``tools/train.py``
(resuming from its last checkpoint if it has one), is tested on the test
split with ``tools/test.py`` and leaves a result file
``<output>/runs/<arm>/seed<s>.json``. Then the table (Markdown on stdout,
and ``<output>/table.md`` / ``table.csv``) gives, per arm, the class IoUs and
the mIoU mean ± sample std over seeds, and for each arm with a baseline the
difference of mean mIoU with a 95 % CI and a p-value (paired t-test for
matched seeds, Welch's t-test otherwise).

Examples::

    python tools/run_study.py studies/potsdam_table1.yaml --dry-run
    python tools/run_study.py studies/potsdam_table1.yaml --gpus 4 --paper
    python tools/run_study.py studies/potsdam_table1.yaml --table-only --paper
    python tools/run_study.py my_study.yaml --jobs 8 \\
        --gpu-ids 0 1 2 3 4 5 6 7 --cfg-options train_cfg.max_iters=2000
"""
import argparse
import os
import os.path as osp
import sys

from ct_mmseg import study as studies


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
                        table_csv)):
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
