"""Execution: every unfinished run of a study, trained and tested in
``Launch.jobs`` slots at once, each ending with its result file.

:func:`run_study` plans the runs, gives each a :class:`Slot` (GPUs, torchrun
port, log files) from a thread pool and returns the failures
(``List[str]``); :func:`process_run` trains (or resumes), tests and calls
:func:`write_result`, which writes ``<output>/runs/<arm>/seed<s>.json``
(a dict: config, seed, per-class IoU, mIoU, wall times from
:func:`record_timing`, :func:`machine_info`, :func:`code_commit` and the
validation records of :func:`val_metrics`). :func:`stop_rule_reached` checks
the spec's stopping rule before a run starts. Progress is one printed line
per step (:class:`Progress`).
"""
import glob
import importlib.metadata
import json
import os
import os.path as osp
import platform
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .commands import (Launch, evaluate_command, evaluate_config_base,
                       evaluate_config_text, train_command)
from .planning import TEST_CONFIG_NAME, Run, plan_runs
from .results import ResultError, read_results
from .spec import Study
from .statistics import mean_iou
from .table import fmt, summarize_study

RESULT_FORMAT = 'ct_mmseg.study_run.v2'
TIMING_NAME = 'study_timing.json'  # in a run's work_dir: wall times so far


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


def make_slots(launch: Launch) -> List[Slot]:
    """``jobs`` slots; with ``gpu_ids`` each gets ``gpus`` of them."""
    slots = []
    for job in range(launch.jobs):
        gpu_ids = None
        if launch.gpu_ids:
            gpu_ids = launch.gpu_ids[job * launch.gpus:(job + 1) *
                                     launch.gpus]
        # distinct torchrun ports for runs that execute at the same time
        slots.append(Slot(gpu_ids, launch.port + job, launch.jobs > 1))
    return slots


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
    """One line per step of a run: ``[study] run i/N | arm | seed | what |
    elapsed`` (elapsed: since the study started). Plain prints, one lock
    for the parallel jobs (tqdm is not in this stack; a bar would also be
    torn by the runs' own output)."""

    def __init__(self, total: int, name: str, out=None):
        self.total, self.name = total, name
        self.start = time.monotonic()
        self.out = out or sys.stdout
        self.lock = threading.Lock()

    def line(self, index: int, run: Run, what: str):
        elapsed = format_seconds(time.monotonic() - self.start)
        self.say(f'[{self.name}] run {index}/{self.total} | {run.arm.name} '
                 f'| seed {run.seed} | {what} | elapsed {elapsed}')

    def say(self, text: str, file=None):
        with self.lock:
            print(text, file=file or self.out, flush=True)


def execute(cmd: List[str], slot: Slot, launch: Launch, progress: Progress,
            log_file: Optional[str] = None) -> int:
    """Run ``cmd`` (print it first); with parallel jobs its output goes to
    ``log_file`` instead of the terminal."""
    prefix = '' if slot.gpu_ids is None else \
        f'CUDA_VISIBLE_DEVICES={",".join(map(str, slot.gpu_ids))} '
    progress.say(f'$ {prefix}{shlex.join(cmd)}' +
                 (f'  > {log_file}' if slot.to_files and log_file else ''))
    if launch.dry_run:
        return 0
    if not (slot.to_files and log_file):
        return subprocess.call(cmd, env=slot.env())
    os.makedirs(osp.dirname(log_file), exist_ok=True)
    with open(log_file, 'a') as log:
        return subprocess.call(cmd, env=slot.env(), stdout=log,
                               stderr=subprocess.STDOUT)


def read_timing(work_dir: str) -> Dict[str, list]:
    path = osp.join(work_dir, TIMING_NAME)
    if not osp.isfile(path):
        return dict(train=[], test=[])
    with open(path) as f:
        return json.load(f)


def record_timing(work_dir: str, step: str, seconds: float, exit_code: int,
                  resumed: bool = False):
    """Add one attempt's wall time to the work_dir's timing file.

    The file outlives the invocation, so a resumed training adds to the
    parts before it. A training that starts from scratch throws the earlier
    attempts' work away, so it replaces their times.
    """
    timing = read_timing(work_dir)
    entry = dict(seconds=round(seconds, 3), exit_code=exit_code)
    if step == 'train':
        entry['resumed'] = resumed
        if not resumed:
            timing['train'] = []
    timing.setdefault(step, []).append(entry)
    os.makedirs(work_dir, exist_ok=True)
    with open(osp.join(work_dir, TIMING_NAME), 'w') as f:
        json.dump(timing, f, indent=1)


def timed(step: str, run: Run, cmd: List[str], slot: Slot, launch: Launch,
          progress: Progress, resumed: bool = False) -> int:
    start = time.monotonic()
    code = execute(cmd, slot, launch, progress,
                   osp.join(run.work_dir, f'study_{step}.log'))
    if not launch.dry_run:
        record_timing(run.work_dir, step, time.monotonic() - start, code,
                      resumed)
    return code


def val_metrics(work_dir: str) -> List[dict]:
    """The validation metrics logged during training, one record per
    evaluation, from every ``<work_dir>/<timestamp>/vis_data/scalars.json``
    (a resumed run has several; the later one wins for a repeated step).
    Values as MMSeg logs them (percent)."""
    by_step = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                if 'mIoU' not in record or 'loss' in record:
                    continue  # a training record
                by_step[record.get('step')] = {
                    k: v for k, v in record.items()
                    if k not in ('time', 'data_time')}
    return [by_step[s] for s in sorted(by_step, key=lambda s: s or 0)]


def machine_info() -> Dict[str, str]:
    """What a run's numbers depend on besides the code and the seed.

    The same config and seed repeat exactly on one machine but not across
    machines (other CPU kernels, other float rounding), so a paired
    comparison must never pair runs made on two machines. ``id`` joins the
    CPU model, the torch build and the GPU (if any) into one string to
    compare.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        torch_build = importlib.metadata.version('torch')
    except importlib.metadata.PackageNotFoundError:
        torch_build = 'not installed'
    gpu = ''
    if os.environ.get('CUDA_VISIBLE_DEVICES') != '' and \
            shutil.which('nvidia-smi'):
        out = subprocess.run(['nvidia-smi', '--query-gpu=name',
                              '--format=csv,noheader'], capture_output=True,
                             text=True)
        gpu = ', '.join(out.stdout.split('\n')[:1]).strip() \
            if out.returncode == 0 else ''
    return OrderedDict(
        id=f'{cpu} | torch {torch_build} | {gpu or "no GPU"}',
        cpu=cpu, cpu_count=str(os.cpu_count()), torch=torch_build,
        gpu=gpu, python=platform.python_version(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS', ''))


def code_commit(folder: Optional[str] = None) -> str:
    """The git commit of the checkout ``folder`` is in (default: the one
    this ct_mmseg was imported from, i.e. the code the runs import),
    ``+dirty`` when tracked files differ from it; ``'unknown'`` outside a
    git checkout (e.g. a pip-installed ct_mmseg)."""
    folder = folder or osp.dirname(osp.abspath(__file__))
    def git(*args):
        out = subprocess.run(['git', '-C', folder, *args],
                             capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    commit = git('rev-parse', 'HEAD')
    if commit is None:
        return 'unknown'
    dirty = git('status', '--porcelain', '--untracked-files=no')
    return commit + ('+dirty' if dirty else '')


def write_result(study: Study, run: Run) -> dict:
    """The run's result file, from its test output, logs and timing."""
    if not osp.isfile(run.per_class_file):
        raise ResultError(f'{run.work_dir}: tools/test.py wrote no '
                          f'{run.per_class_file}')
    with open(run.per_class_file) as f:
        test = json.load(f)
    iou = OrderedDict((c, test['iou'][c]) for c in test['classes'])
    unknown = sorted(set(study.exclude_classes) - set(iou))
    if unknown:
        raise ResultError(f'{study.source}: exclude_classes: {unknown} are '
                          f'not classes of {run.arm.name} ({list(iou)})')
    timing = read_timing(run.work_dir)
    train_times = [t['seconds'] for t in timing.get('train', [])]
    test_times = [t['seconds'] for t in timing.get('test', [])]
    result = OrderedDict(
        format=RESULT_FORMAT,
        study=study.name,
        arm=run.arm.name,
        config=run.arm.config,
        seed=run.seed,
        cfg_options=run.train_options,
        labels=run.labels,
        split=study.split,
        classes=list(iou),
        iou=iou,
        mIoU=mean_iou(iou),
        exclude_classes=list(study.exclude_classes),
        mIoU_excl=mean_iou(iou, study.exclude_classes)
        if study.exclude_classes else None,
        aAcc=test.get('aAcc'),
        num_test_images=test.get('num_images'),
        # per class: intersection, union, prediction, label pixel counts
        pixels=test.get('pixels'),
        iterations=run.max_iters,
        # the attempts that led to the final checkpoint (record_timing);
        # one killed outright (the tool too, so no exit code) is missing
        train_wall_s=round(sum(train_times), 3) if train_times else None,
        train_attempts=len(train_times),
        test_wall_s=test_times[-1] if test_times else None,
        work_dir=run.work_dir,
        machine=machine_info(),
        commit=code_commit(),
        val=val_metrics(run.work_dir))
    os.makedirs(osp.dirname(run.result_file), exist_ok=True)
    with open(run.result_file, 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    return result


def process_run(study: Study, run: Run, index: int, slot: Slot,
                launch: Launch, progress: Progress) -> Optional[str]:
    """Train (unless trained), test and write the result file of one run,
    unless it is finished. Returns an error message, or None."""
    note = f'{run.max_iters} iters' + (f', {run.batch_note}'
                                       if run.batch_note else '')
    if run.finished:
        if not launch.retest:
            check_result_options(run, progress)
            progress.line(index, run,
                          f'finished earlier ({run.result_file})')
            return None
        if not run.trained:  # never train a finished run again
            return f'{run.name}: cannot retest, the final checkpoint ' \
                f'{run.final_checkpoint} is gone'
    will_train = not run.trained
    if will_train:
        resumed = run.resumable
        progress.line(index, run, ('resuming' if resumed else 'training') +
                      f' ({note}) in {run.work_dir}')
        code = timed('train', run, train_command(run, launch, slot.port),
                     slot, launch, progress, resumed)
        if code != 0:
            return f'{run.name}: training failed (exit {code}), see ' \
                f'{run.work_dir}'
    else:
        progress.line(index, run, f'trained ({run.final_checkpoint})')
    if launch.no_test:
        return None
    progress.line(index, run, f'testing on the {study.split} split')
    cmd = evaluate_command(run, launch, slot.port, will_train)
    if not launch.dry_run:
        with open(osp.join(run.work_dir, TEST_CONFIG_NAME), 'w') as f:
            f.write(evaluate_config_text(run, evaluate_config_base(run),
                                         study.split))
        if osp.isfile(run.per_class_file):  # never read an earlier test's
            os.remove(run.per_class_file)
    code = timed('test', run, cmd, slot, launch, progress)
    if code != 0:
        return f'{run.name}: test failed (exit {code}), see {run.work_dir}'
    if launch.dry_run:
        return None
    try:
        result = write_result(study, run)
    except (ResultError, OSError, KeyError, ValueError) as exc:
        return f'{run.name}: {exc}'
    miou = result['mIoU_excl'] if study.exclude_classes else result['mIoU']
    progress.line(index, run, f'done: mIoU {fmt(miou)}, train '
                  f'{format_seconds(result["train_wall_s"] or 0)}, test '
                  f'{format_seconds(result["test_wall_s"] or 0)} '
                  f'({run.result_file})')
    return None


def check_result_options(run: Run, progress: Progress):
    """Warn when a finished run was made with other options than the
    planned ones (e.g. another max_iters): it is kept, not rerun."""
    try:
        with open(run.result_file) as f:
            recorded = json.load(f).get('cfg_options')
    except (OSError, ValueError):
        return
    if recorded is not None and recorded != run.train_options:
        changed = sorted(set(recorded) ^ set(run.train_options))
        progress.say(f'warning: {run.result_file} was made with other '
                     f'cfg-options ({", ".join(changed)}); kept as it is '
                     '(delete it to run again)', file=sys.stderr)


def run_study(study: Study, launch: Launch, cli_options: Sequence[str] = (),
              out=None) -> List[str]:
    """Run every unfinished run of the study. Returns the failures."""
    runs = plan_runs(study, cli_options, launch.gpus)
    progress = Progress(len(runs), study.name, out)
    slots = queue.Queue()
    for slot in make_slots(launch):
        slots.put(slot)
    failures = []
    stop = threading.Event()

    def task(index: int, run: Run):
        if stop.is_set():
            return
        if study.stop is not None and not run.finished:
            reached = stop_rule_reached(study)
            if reached:
                progress.line(index, run, f'not started: {reached}')
                return
        slot = slots.get()
        try:
            error = process_run(study, run, index, slot, launch, progress)
        except Exception as exc:  # a bug must not hang the other jobs
            error = f'{run.name}: {type(exc).__name__}: {exc}'
        finally:
            slots.put(slot)
        if error:
            failures.append(error)
            progress.say(f'error: {error}', file=sys.stderr)
            if not launch.keep_going:
                stop.set()  # runs already started finish; no new ones

    # Runs are independent (train then test within a run), so `jobs` of
    # them execute at once; each thread holds one slot while it works.
    pool = ThreadPoolExecutor(max_workers=launch.jobs)
    try:
        for index, run in enumerate(runs, 1):
            pool.submit(task, index, run)
        pool.shutdown(wait=True)
    except KeyboardInterrupt:
        # Ctrl-C reached the runs too (same process group); start no more,
        # even with keep_going
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return failures


def stop_rule_reached(study: Study) -> Optional[str]:
    """Why the study's stopping rule (:class:`StopRule`) holds on the
    finished runs, or None while it does not."""
    rule = study.stop
    rows = {row.arm: row for row in summarize_study(
        study, read_results(study, warn=lambda text: None))}
    row = rows.get(rule.arm)
    comparison = row.comparison if row is not None else None
    if comparison is None or comparison.test != 'paired' or \
            comparison.ci_low is None:
        return None
    pairs = int(comparison.df) + 1
    half = (comparison.ci_high - comparison.ci_low) / 2
    if pairs >= rule.min_pairs and half <= rule.half_width:
        return (f'stopping rule met: {rule.arm} vs {row.baseline}, {pairs} '
                f'pairs, 95 % CI half-width {half:.4f} <= '
                f'{rule.half_width}')
    return None
