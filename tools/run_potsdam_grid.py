#!/usr/bin/env python
"""Run the paper's Table 1 grid: 3 models x (baseline, CT-CL, CT-InfoNCE)
x seeds, each trained by MMSeg's ``tools/train.py`` and evaluated by MMSeg's
``tools/test.py``.

Every run has its own work_dir, ``<work-root>/<config name>/seed<s>``:

* training: ``tools/train.py <config> --work-dir <run> --cfg-options
  randomness.seed=<s> train_dataloader.batch_size=<32 / gpus> ...`` (and
  ``ct_head.seed=<s>`` for the CT configs); with
  ``--gpus N > 1`` through torchrun (``python -m torch.distributed.run
  --nproc_per_node N ... --launcher pytorch``);
* resumable: a run whose final checkpoint ``iter_<max_iters>.pth`` exists is
  skipped; an unfinished one with a checkpoint gets ``--resume``;
* evaluation: ``tools/test.py <run>/<config name>.py <run>/iter_<max>.pth``
  (the config the run dumped: what was trained, CT head included) with
  ``test_evaluator.results_file=<run>/test/per_class_iou.json``, the file
  ``tools/ct_table.py`` reads. Skipped when that file exists, unless the
  run was (re)trained now or ``--retest`` is given.
* ``--jobs J`` runs J runs at once (e.g. one per GPU: ``--jobs 8
  --gpu-ids 0 1 2 3 4 5 6 7``); their output then goes to
  ``<run>/grid_train.log`` and ``<run>/grid_test.log``.

Examples::

    python tools/run_potsdam_grid.py --dry-run          # print the commands
    python tools/run_potsdam_grid.py --gpus 4           # the whole grid
    python tools/run_potsdam_grid.py --jobs 8 --gpu-ids 0 1 2 3 4 5 6 7
    python tools/run_potsdam_grid.py --configs configs/ct/dcswin_potsdam.py \\
        --seeds 0 --cfg-options train_dataloader.dataset.data_root=/d/pots \\
        val_dataloader.dataset.data_root=/d/pots \\
        test_dataloader.dataset.data_root=/d/pots
    python tools/ct_table.py --work-root work_dirs/potsdam_grid --paper

``--cfg-options`` is passed to every training (after the grid's own
options, so it wins); the evaluation uses the config the training dumped,
which already contains them.
"""
import argparse
import os
import os.path as osp
import queue
import shlex
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The paper's Table 1 rows, in its order (relative to the current folder).
DEFAULT_CONFIGS = [
    osp.relpath(
        osp.join(REPO, 'configs', 'ct', f'{model}{variant}_potsdam.py'))
    for model in ('dcswin', 'unetformer', 'dcpoolformer')
    for variant in ('', '_ct', '_ct-infonce')
]
DEFAULT_SEEDS = [0, 1, 2]
DEFAULT_WORK_ROOT = 'work_dirs/potsdam_grid'
RESULTS_NAME = 'per_class_iou.json'  # under <run>/test/
TEST_DIR = 'test'


def mmseg_tool(name: str) -> str:
    """Path of MMSeg's bundled ``tools/<name>`` (train.py, test.py)."""
    import importlib.util
    spec = importlib.util.find_spec('mmseg')
    if spec is None or spec.origin is None:
        raise SystemExit('mmseg is not installed in this environment')
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise SystemExit(f'MMSeg tool not found: {path}')
    return path


def config_name(config: str) -> str:
    """Run folder name of a config: its file name without ``.py``."""
    return osp.splitext(osp.basename(config))[0]


def run_dir(work_root: str, config: str, seed: int) -> str:
    """``<work_root>/<config name>/seed<seed>``."""
    return osp.join(work_root, config_name(config), f'seed{seed}')


def results_path(work_dir: str) -> str:
    """The per-class results file of a run (written by tools/test.py)."""
    return osp.join(work_dir, TEST_DIR, RESULTS_NAME)


def parse_cfg_options(options: List[str]) -> Dict[str, str]:
    """``['a.b=1', ...]`` -> ``{'a.b': '1'}`` (values kept as text)."""
    parsed = {}
    for option in options:
        key, sep, value = option.partition('=')
        if not sep or not key:
            raise SystemExit(f'--cfg-options: expected key=value, got '
                             f'{option!r}')
        parsed[key] = value
    return parsed


def load_config(config: str, cfg_options: List[str]):
    """The merged config (file + ``--cfg-options``), as train.py sees it.

    Custom imports are not executed: only plain values (``max_iters``,
    ``total_batch_size``, the backbone type) are read here.
    """
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config, import_custom_modules=False)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    return cfg


def pretrained_options(cfg, swin: Optional[str],
                       poolformer: Optional[str]) -> List[str]:
    """``--cfg-options`` that point the backbone at a local checkpoint.

    ``_delete_`` replaces the config's ``init_cfg`` (None when the config's
    ``pretrained`` is None) instead of merging into it.
    """
    backbone = str(cfg.model.backbone.type)
    if 'Swin' in backbone and swin:
        path, prefix = swin, None  # MMSeg's Swin strips 'backbone.' itself
    elif 'PoolFormer' in backbone and poolformer:
        path, prefix = poolformer, 'backbone.'  # mmpretrain checkpoints
    else:
        return []
    key = 'model.backbone.init_cfg'
    options = [f'{key}._delete_=True', f'{key}.type=Pretrained',
               f'{key}.checkpoint={osp.abspath(path)}']
    if prefix:
        options.append(f'{key}.prefix={prefix}')
    return options


@dataclass
class Run:
    """One (config, seed) cell of the grid and what is left to do."""
    config: str
    seed: int
    work_dir: str
    max_iters: int
    train_options: List[str] = field(default_factory=list)
    batch_note: str = ''

    @property
    def final_checkpoint(self) -> str:
        return osp.join(self.work_dir, f'iter_{self.max_iters}.pth')

    @property
    def dumped_config(self) -> str:
        """The config MMEngine's runner writes into the work_dir."""
        return osp.join(self.work_dir, osp.basename(self.config))

    @property
    def results_file(self) -> str:
        return results_path(self.work_dir)

    @property
    def trained(self) -> bool:
        return osp.isfile(self.final_checkpoint)

    @property
    def resumable(self) -> bool:
        # MMEngine's CheckpointHook records the latest checkpoint here;
        # train.py --resume reads it.
        return osp.isfile(osp.join(self.work_dir, 'last_checkpoint'))

    @property
    def tested(self) -> bool:
        return osp.isfile(self.results_file)


def plan_runs(args) -> List[Run]:
    """One :class:`Run` per (seed, config), seed-major (a whole seed of the
    table is ready before the next seed starts)."""
    runs = []
    cfgs = {}
    for config in args.configs:
        if not osp.isfile(config):
            raise SystemExit(f'config not found: {config}')
    names = [config_name(c) for c in args.configs]
    if len(set(names)) != len(names):
        raise SystemExit(f'two configs share a file name (their runs would '
                         f'share a work_dir): {names}')
    for seed in args.seeds:
        for config in args.configs:
            if config not in cfgs:
                cfgs[config] = load_config(config, args.cfg_options)
            cfg = cfgs[config]
            grid_options = [f'randomness.seed={seed}']
            if cfg.get('ct_head') is not None and \
                    'ct_head.seed' not in parse_cfg_options(args.cfg_options):
                # CT's draws have their own seed (exact resume); vary it
                # with the run's seed so the seeds differ in CT too
                grid_options.append(f'ct_head.seed={seed}')
            batch_note = ''
            user_keys = parse_cfg_options(args.cfg_options)
            total = cfg.get('total_batch_size')
            if total is not None and \
                    'train_dataloader.batch_size' not in user_keys:
                if total % args.gpus:
                    raise SystemExit(
                        f'{config}: total batch {total} is not divisible by '
                        f'--gpus {args.gpus}; pass '
                        'train_dataloader.batch_size=... in --cfg-options')
                per_gpu = total // args.gpus
                grid_options.append(f'train_dataloader.batch_size={per_gpu}')
                batch_note = f'batch {args.gpus} GPU(s) x {per_gpu} = {total}'
            grid_options += pretrained_options(cfg, args.swin_pretrained,
                                               args.poolformer_pretrained)
            runs.append(Run(
                config=config, seed=seed,
                work_dir=run_dir(args.work_root, config, seed),
                max_iters=int(cfg.train_cfg.max_iters),
                # user options last: they override the grid's
                train_options=grid_options + list(args.cfg_options),
                batch_note=batch_note))
    return runs


def launcher_prefix(gpus: int, port: int) -> List[str]:
    """Interpreter (+ torchrun for several GPUs) that runs an MMSeg tool."""
    if gpus == 1:
        return [sys.executable]
    # `python -m torch.distributed.run` is torchrun, with this interpreter.
    return [sys.executable, '-m', 'torch.distributed.run',
            f'--nproc_per_node={gpus}', f'--master_port={port}']


def train_command(run: Run, args, port: int) -> List[str]:
    cmd = [*launcher_prefix(args.gpus, port), mmseg_tool('train.py'),
           run.config, '--work-dir', run.work_dir]
    if run.resumable:
        cmd.append('--resume')
    if args.amp:
        cmd.append('--amp')
    if args.gpus > 1:
        cmd += ['--launcher', 'pytorch']
    return cmd + ['--cfg-options', *run.train_options]


def test_command(run: Run, args, will_train: bool, port: int) -> List[str]:
    """tools/test.py on the final checkpoint, writing the results file.

    The config is the one the training dumped into the work_dir (it holds
    the seed, the --cfg-options and, for CT, the head, so the checkpoint
    loads strictly); without it, the original config + --cfg-options.
    """
    options = [f'test_evaluator.results_file={osp.abspath(run.results_file)}']
    if will_train or osp.isfile(run.dumped_config):
        config = run.dumped_config
    else:
        config = run.config
        options = list(run.train_options) + options
    cmd = [*launcher_prefix(args.gpus, port), mmseg_tool('test.py'),
           config, run.final_checkpoint, '--work-dir',
           osp.join(run.work_dir, TEST_DIR)]
    if args.gpus > 1:
        cmd += ['--launcher', 'pytorch']
    return cmd + ['--cfg-options', *options]


@dataclass
class Slot:
    """Where a run executes: its GPUs (None: the inherited environment),
    its torchrun port and whether its output goes to log files."""
    gpu_ids: Optional[List[int]]
    port: int
    to_files: bool

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        if self.gpu_ids is not None:
            env['CUDA_VISIBLE_DEVICES'] = ','.join(map(str, self.gpu_ids))
        return env


def make_slots(args) -> List[Slot]:
    """``--jobs`` slots; with ``--gpu-ids`` each gets ``--gpus`` of them."""
    slots = []
    for job in range(args.jobs):
        gpu_ids = None
        if args.gpu_ids:
            gpu_ids = args.gpu_ids[job * args.gpus:(job + 1) * args.gpus]
        # distinct torchrun ports for runs that execute at the same time
        slots.append(Slot(gpu_ids, args.port + job, args.jobs > 1))
    return slots


_print_lock = threading.Lock()


def say(message: str, file=None):
    with _print_lock:
        print(message, file=file or sys.stdout, flush=True)


def execute(cmd: List[str], slot: Slot, dry_run: bool,
            log_file: Optional[str] = None) -> int:
    """Run ``cmd`` (print it first); with parallel jobs its output goes to
    ``log_file`` instead of the terminal."""
    prefix = '' if slot.gpu_ids is None else \
        f'CUDA_VISIBLE_DEVICES={",".join(map(str, slot.gpu_ids))} '
    say(f'$ {prefix}{shlex.join(cmd)}' +
        (f'  > {log_file}' if slot.to_files and log_file else ''))
    if dry_run:
        return 0
    if not (slot.to_files and log_file):
        return subprocess.call(cmd, env=slot.env())
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    with open(log_file, 'a') as log:
        return subprocess.call(cmd, env=slot.env(), stdout=log,
                               stderr=subprocess.STDOUT)


def process_run(run: Run, index: int, total: int, slot: Slot,
                args) -> Optional[str]:
    """Train (unless finished) then test (unless tested) one run. Returns
    an error message, or None."""
    head = (f'[{index}/{total}] {config_name(run.config)} seed {run.seed} '
            f'({run.max_iters} iters'
            f'{", " + run.batch_note if run.batch_note else ""})')
    will_train = not run.trained
    if will_train:
        state = 'resuming' if run.resumable else 'training'
        say(f'{head}: {state} in {run.work_dir}')
        code = execute(train_command(run, args, slot.port), slot,
                       args.dry_run, osp.join(run.work_dir, 'grid_train.log'))
        if code != 0:
            return f'{run.work_dir}: training failed (exit {code})'
    else:
        say(f'{head}: trained ({run.final_checkpoint})')
    if args.no_test:
        return None
    if run.tested and not will_train and not args.retest:
        say(f'{head}: tested ({run.results_file})')
        return None
    code = execute(test_command(run, args, will_train, slot.port), slot,
                   args.dry_run, osp.join(run.work_dir, 'grid_test.log'))
    if code != 0:
        return f'{run.work_dir}: test failed (exit {code})'
    say(f'{head}: done ({run.results_file})')
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train and evaluate the CT paper\'s Potsdam grid '
        '(Table 1) with MMSeg\'s tools/train.py and tools/test.py.')
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS,
                        help='configs to run (default: the nine Table 1 '
                        'configs in configs/ct/)')
    parser.add_argument('--seeds', nargs='+', type=int, default=DEFAULT_SEEDS,
                        help='seeds (randomness.seed); default 0 1 2')
    parser.add_argument('--work-root', default=DEFAULT_WORK_ROOT,
                        help='runs go to <work-root>/<config>/seed<s>')
    parser.add_argument('--gpus', type=int, default=1,
                        help='GPUs per run; > 1 launches torchrun with '
                        '--launcher pytorch. The per-GPU batch is set to '
                        'total_batch_size / gpus (32 / N).')
    parser.add_argument('--jobs', type=int, default=1,
                        help='runs executed at the same time (default 1); '
                        'with > 1 each run\'s output goes to '
                        '<run>/grid_{train,test}.log')
    parser.add_argument('--gpu-ids', type=int, nargs='+', metavar='ID',
                        help='GPUs to spread the jobs over: job j gets '
                        'ids[j*gpus:(j+1)*gpus] as CUDA_VISIBLE_DEVICES, '
                        'e.g. --jobs 8 --gpu-ids 0 1 2 3 4 5 6 7 (default: '
                        'the inherited CUDA_VISIBLE_DEVICES)')
    parser.add_argument('--port', type=int, default=29500,
                        help='torchrun master port (--gpus > 1); job j '
                        'uses port + j')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (train.py --amp)')
    parser.add_argument('--swin-pretrained', metavar='PATH',
                        help='local MMSeg-format Swin checkpoint for the '
                        'Swin configs (default: random init)')
    parser.add_argument('--poolformer-pretrained', metavar='PATH',
                        help='local mmpretrain PoolFormer-S12 checkpoint '
                        'for the PoolFormer configs (default: random init)')
    parser.add_argument('--no-test', action='store_true',
                        help='only train')
    parser.add_argument('--retest', action='store_true',
                        help='re-run tools/test.py even where results exist')
    parser.add_argument('--keep-going', action='store_true',
                        help='go on with the next run after a failure')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands, run nothing')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to every training (tools/train.py '
                        '--cfg-options), after the grid\'s own options')
    args = parser.parse_args(argv)
    if args.gpus < 1 or args.jobs < 1:
        parser.error('--gpus and --jobs must be >= 1')
    if args.gpu_ids and len(args.gpu_ids) < args.jobs * args.gpus:
        parser.error(f'--jobs {args.jobs} x --gpus {args.gpus} needs '
                     f'{args.jobs * args.gpus} --gpu-ids, got '
                     f'{len(args.gpu_ids)}')
    for path in (args.swin_pretrained, args.poolformer_pretrained):
        if path and not osp.isfile(path):
            parser.error(f'pretrained checkpoint not found: {path}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    runs = plan_runs(args)
    slots = queue.Queue()
    for slot in make_slots(args):
        slots.put(slot)
    failures = []
    stop = threading.Event()

    def task(index: int, run: Run):
        if stop.is_set():
            return
        slot = slots.get()
        try:
            error = process_run(run, index, len(runs), slot, args)
        finally:
            slots.put(slot)
        if error:
            failures.append(error)
            say(f'error: {error}', file=sys.stderr)
            if not args.keep_going:
                stop.set()  # runs already started finish; no new ones

    # Runs are independent (train then test within a run), so --jobs of
    # them execute at once; each thread holds one slot while it works.
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for index, run in enumerate(runs, 1):
            pool.submit(task, index, run)
    if failures:
        say('FAILED:\n  ' + '\n  '.join(failures), file=sys.stderr)
        return 1
    if not args.dry_run and not args.no_test:
        say('table: python tools/ct_table.py --work-root '
            f'{shlex.quote(args.work_root)} --paper')
    return 0


if __name__ == '__main__':
    sys.exit(main())
