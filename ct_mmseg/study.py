"""Studies: arms x seeds, trained and tested by MMSeg's tools, then a table.

An *arm* is an MMSeg config plus optional ``--cfg-options`` (two arms may
share a config, e.g. ``ct_head.loss_decode.clip_mode`` clamp vs scale). A
*study* is a list of arms, the seeds each arm runs, and, for CT arms, the
name of the baseline arm they are compared against. It is described by a
small YAML or JSON file (see :func:`load_spec` and ``docs/studies.md``).

Every (arm, seed) run

* trains with MMSeg's ``tools/train.py`` in ``<work_root>/<arm>/seed<s>``
  (through torchrun for several GPUs), with ``randomness.seed=<s>`` and, for
  CT configs, ``ct_head.seed=<s>`` (the CT draws have their own generator;
  it follows the run's seed so that seeds differ in CT too);
* is resumable: a run whose result file exists is skipped; an unfinished
  one resumes from its last checkpoint (``--resume``), or trains again from
  scratch when it was killed before its first checkpoint;
* is tested on the **test** split (the config's ``test_dataloader``) by
  MMSeg's ``tools/test.py`` on the final checkpoint, with the per-class IoU
  written by :class:`ct_mmseg.evaluation.PerClassIoUMetric`;
* ends with one small JSON result file, ``<output>/runs/<arm>/seed<s>.json``
  (config, seed, per-class IoU, mIoU, wall times, iterations, and the
  validation metrics logged during training). The output folder holds no
  checkpoint; the work_dirs (checkpoints, logs, ``scalars.json``) stay under
  ``work_root``.

The table (:func:`summarize_study`, :func:`to_markdown`, :func:`to_csv`)
gives, per arm, the seed-averaged class IoUs and the mIoU mean and sample
std; for every arm with a baseline, the difference of mean mIoU with a 95 %
confidence interval and a p-value: a paired t-test when both arms ran the
same seeds (same data order and initialisation, so the seeds pair up),
Welch's t-test otherwise (:func:`compare`).

This module is plain Python; mmengine is imported only to read configs and
scipy only for the statistics. ``tools/run_study.py`` is its command line.
"""
import argparse
import csv
import glob
import importlib.metadata
import io
import json
import math
import os
import os.path as osp
import platform
import queue
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

RESULT_FORMAT = 'ct_mmseg.study_run.v2'
TIMING_NAME = 'study_timing.json'  # in a run's work_dir: wall times so far
TEST_CONFIG_NAME = 'study_test_config.py'  # in a run's work_dir
TEST_DIR = 'test'  # tools/test.py's work_dir inside a run's work_dir
PER_CLASS_NAME = 'per_class_iou.json'  # PerClassIoUMetric's file, in TEST_DIR
# Folder names: arm names become folders, so no slashes or spaces.
ARM_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]*')
SPEC_KEYS = ('name', 'seeds', 'arms', 'cfg_options', 'exclude_classes',
             'work_root', 'output', 'split', 'stop')
STOP_KEYS = ('arm', 'half_width', 'min_pairs')
# What a study's runs are scored on: the held-out test split, or, for a
# pilot that must not read the test, the validation split.
SPLITS = ('test', 'val')
ARM_KEYS = ('name', 'config', 'cfg_options', 'baseline', 'seeds')
CONFIDENCE = 0.95


class SpecError(ValueError):
    """A study spec (or a config it names) cannot be used as written."""


class ResultError(RuntimeError):
    """A run's outputs or result file are missing something."""


# ------------------------------------------------------------------ spec
@dataclass
class Arm:
    """A config plus the cfg-options that make this arm, and its seeds."""
    name: str
    config: str
    cfg_options: List[str]
    seeds: List[int]
    baseline: Optional[str] = None


@dataclass
class Study:
    """Arms x seeds, where the runs go and how the mIoU is counted."""
    name: str
    arms: List[Arm]
    work_root: str
    output: str
    cfg_options: List[str] = field(default_factory=list)
    exclude_classes: List[str] = field(default_factory=list)
    source: str = '<spec>'  # the spec file, for messages
    split: str = 'test'  # what each run is scored on (SPLITS)
    stop: Optional['StopRule'] = None  # the stopping rule, if any

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def work_dir(self, arm: str, seed: int) -> str:
        """``<work_root>/<arm>/seed<seed>``: checkpoints and logs."""
        return osp.join(self.work_root, arm, f'seed{seed}')

    def result_file(self, arm: str, seed: int) -> str:
        """``<output>/runs/<arm>/seed<seed>.json``: the run's result."""
        return osp.join(self.output, 'runs', arm, f'seed{seed}.json')


@dataclass
class StopRule:
    """Stop starting new seeds once ``arm``'s paired comparison with its
    baseline has at least ``min_pairs`` matched pairs and a confidence
    interval no wider than ``half_width`` (mIoU as a fraction) on each
    side. Written into the spec before the runs, so it is pre-registered
    with them."""
    arm: str
    half_width: float
    min_pairs: int


def parse_stop(data: Any, arms: List[Arm], where: str) -> StopRule:
    if not isinstance(data, dict):
        raise SpecError(f'{where}: expected a mapping with the keys '
                        f'{", ".join(STOP_KEYS)}')
    check_keys(data, STOP_KEYS, where)
    arm = data.get('arm')
    named = {a.name: a for a in arms}
    if arm not in named or named[arm].baseline is None:
        raise SpecError(f'{where}: arm: {arm!r} is not an arm with a '
                        'baseline')
    half_width = data.get('half_width')
    if isinstance(half_width, bool) or not isinstance(
            half_width, (int, float)) or not 0 < half_width < 1:
        raise SpecError(f'{where}: half_width: expected a fraction of mIoU '
                        f'in (0, 1), e.g. 0.01, got {half_width!r}')
    min_pairs = data.get('min_pairs', 2)
    if isinstance(min_pairs, bool) or not isinstance(min_pairs, int) or \
            min_pairs < 2:
        raise SpecError(f'{where}: min_pairs: expected an integer >= 2, '
                        f'got {min_pairs!r}')
    return StopRule(arm, float(half_width), min_pairs)


def option_text(value: Any, where: str) -> str:
    """A spec value as ``--cfg-options`` text, as mmengine's DictAction
    reads it back: True/False/None by name, lists as ``[a,b]``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(option_text(v, where) for v in value) + ']'
    raise SpecError(f'{where}: a {type(value).__name__} value cannot be '
                    'passed as a cfg-option; write "key=value" text')


def parse_cfg_options(value: Any, where: str) -> List[str]:
    """``cfg_options`` of a spec as ``['key=value', ...]``.

    Accepts a list of ``key=value`` strings (as on the command line) or a
    mapping; nested mappings become dotted keys, so
    ``{ct_head: {loss_decode: {clip_mode: scale}}}`` and
    ``{ct_head.loss_decode.clip_mode: scale}`` are the same option.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        options = []

        def flatten(prefix: str, mapping: dict):
            for key, item in mapping.items():
                if not isinstance(key, str) or not key:
                    raise SpecError(f'{where}: key {key!r} is not a name')
                full = f'{prefix}.{key}' if prefix else key
                if isinstance(item, dict):
                    flatten(full, item)
                else:
                    options.append(f'{full}={option_text(item, where)}')

        flatten('', value)
        return options
    if isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, str) or '=' not in item or \
                    item.startswith('='):
                raise SpecError(f'{where}: expected "key=value" text, got '
                                f'{item!r}')
        return list(value)
    raise SpecError(f'{where}: expected a list of "key=value" strings or a '
                    f'mapping, got {type(value).__name__}')


def option_keys(options: Sequence[str]) -> List[str]:
    return [option.split('=', 1)[0] for option in options]


def parse_seeds(value: Any, where: str) -> List[int]:
    if not isinstance(value, list) or not value or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise SpecError(f'{where}: expected a non-empty list of integer '
                        f'seeds, got {value!r}')
    if len(set(value)) != len(value):
        raise SpecError(f'{where}: seeds repeat: {value}')
    return list(value)


def check_keys(mapping: dict, known: Sequence[str], where: str):
    unknown = [k for k in mapping if k not in known]
    if unknown:
        raise SpecError(f'{where}: unknown key {unknown[0]!r} (known keys: '
                        f'{", ".join(known)})')


def parse_spec(data: Any, source: str = '<spec>',
               default_name: str = 'study') -> Study:
    """A :class:`Study` from the mapping of a spec file (see
    :func:`load_spec`); errors name the file and the key."""
    if not isinstance(data, dict):
        raise SpecError(f'{source}: expected a mapping with the keys '
                        f'{", ".join(SPEC_KEYS)}')
    check_keys(data, SPEC_KEYS, source)
    name = data.get('name', default_name)
    if not isinstance(name, str) or not ARM_NAME.fullmatch(name):
        raise SpecError(f'{source}: name: {name!r} is not a folder name '
                        '(letters, digits, _ . + -)')
    seeds = None
    if 'seeds' in data:
        seeds = parse_seeds(data['seeds'], f'{source}: seeds')
    arms_data = data.get('arms')
    if not isinstance(arms_data, list) or not arms_data:
        raise SpecError(f'{source}: arms: expected a non-empty list of arms '
                        f'(mappings with {", ".join(ARM_KEYS)})')
    arms = []
    for index, item in enumerate(arms_data):
        where = f'{source}: arms[{index}]'
        if not isinstance(item, dict):
            raise SpecError(f'{where}: expected a mapping with the keys '
                            f'{", ".join(ARM_KEYS)}')
        arm_name = item.get('name')
        if not isinstance(arm_name, str) or not ARM_NAME.fullmatch(arm_name):
            raise SpecError(f'{where}: name: {arm_name!r} is missing or not '
                            'a folder name (letters, digits, _ . + -)')
        where = f'{source}: arms[{index}] ({arm_name})'
        check_keys(item, ARM_KEYS, where)
        if arm_name in [a.name for a in arms]:
            raise SpecError(f'{where}: name: another arm is called '
                            f'{arm_name!r} (their runs would share folders)')
        config = item.get('config')
        if not isinstance(config, str) or not config:
            raise SpecError(f'{where}: config: expected the path of an '
                            f'MMSeg config, got {config!r}')
        if 'seeds' in item:
            arm_seeds = parse_seeds(item['seeds'], f'{where}: seeds')
        elif seeds is not None:
            arm_seeds = list(seeds)
        else:
            raise SpecError(f'{where}: seeds: no seeds for this arm (give '
                            'the study\'s "seeds" or the arm\'s own)')
        baseline = item.get('baseline')
        if baseline is not None and not isinstance(baseline, str):
            raise SpecError(f'{where}: baseline: expected an arm name, got '
                            f'{baseline!r}')
        arms.append(Arm(name=arm_name, config=config,
                        cfg_options=parse_cfg_options(
                            item.get('cfg_options'), f'{where}: cfg_options'),
                        seeds=arm_seeds, baseline=baseline))
    names = [a.name for a in arms]
    for index, arm in enumerate(arms):
        if arm.baseline is None:
            continue
        where = f'{source}: arms[{index}] ({arm.name}): baseline'
        if arm.baseline == arm.name:
            raise SpecError(f'{where}: an arm cannot be its own baseline')
        if arm.baseline not in names:
            raise SpecError(f'{where}: no arm is called {arm.baseline!r} '
                            f'(arms: {", ".join(names)})')
    exclude = data.get('exclude_classes', [])
    if not isinstance(exclude, list) or not all(
            isinstance(c, str) for c in exclude):
        raise SpecError(f'{source}: exclude_classes: expected a list of '
                        f'class names, got {exclude!r}')
    paths = {}
    for key, default in (('work_root', osp.join('work_dirs', 'studies',
                                                name)),
                         ('output', osp.join('studies', name))):
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            raise SpecError(f'{source}: {key}: expected a folder path, got '
                            f'{value!r}')
        paths[key] = value
    split = data.get('split', 'test')
    if split not in SPLITS:
        raise SpecError(f'{source}: split: expected one of {SPLITS}, got '
                        f'{split!r}')
    stop = None
    if data.get('stop') is not None:
        stop = parse_stop(data['stop'], arms, f'{source}: stop')
    study = Study(name=name, arms=arms, work_root=paths['work_root'],
                  output=paths['output'],
                  cfg_options=parse_cfg_options(data.get('cfg_options'),
                                                f'{source}: cfg_options'),
                  exclude_classes=list(exclude), source=source,
                  split=split, stop=stop)
    check_output_holds_no_checkpoints(study)
    return study


def check_output_holds_no_checkpoints(study: Study):
    """The output folder is meant to be committed: the work_dirs, which
    hold the checkpoints, must not be inside it."""
    output = osp.abspath(study.output)
    work_root = osp.abspath(study.work_root)
    if work_root == output or work_root.startswith(output + os.sep):
        raise SpecError(f'{study.source}: work_root: {study.work_root!r} is '
                        f'inside the output folder {study.output!r}; the '
                        'checkpoints would end up among the result files')


def load_spec(path: str, work_root: Optional[str] = None,
              output: Optional[str] = None) -> Study:
    """Read a study spec file (``.yaml``/``.yml`` or ``.json``).

    Keys (relative paths are read from the current folder, like MMSeg's
    tools)::

        name: potsdam_table1            # default: the file name
        seeds: [0, 1, 2]                # every arm's seeds, unless its own
        cfg_options: [...]              # every run (list or mapping)
        exclude_classes: [clutter]      # left out of the mIoU mean
        work_root: work_dirs/studies/<name>   # work_dirs (checkpoints)
        output: studies/<name>          # result files and tables
        arms:
          - name: dcswin                # folder name of the arm's runs
            config: configs/ct/dcswin_potsdam.py
          - name: dcswin_ct
            config: configs/ct/dcswin_ct_potsdam.py
            cfg_options: {ct_head.loss_decode.clip_mode: scale}
            baseline: dcswin            # compared against this arm
            seeds: [0, 1, 2, 3]         # optional, replaces the study's

    ``work_root`` and ``output`` override the file's values.
    """
    if not osp.isfile(path):
        raise SpecError(f'study spec not found: {path}')
    with open(path) as f:
        text = f.read()
    ext = osp.splitext(path)[1].lower()
    try:
        if ext in ('.yaml', '.yml'):
            import yaml
            data = yaml.safe_load(text)
        elif ext == '.json':
            data = json.loads(text)
        else:
            raise SpecError(f'{path}: a study spec is a .yaml, .yml or '
                            '.json file')
    except (ValueError, ImportError) as exc:  # yaml's errors are ValueErrors
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f'{path}: cannot be parsed: {exc}') from exc
    except Exception as exc:  # yaml.YAMLError
        raise SpecError(f'{path}: cannot be parsed: {exc}') from exc
    if isinstance(data, dict):
        data = dict(data)
        if work_root:
            data['work_root'] = work_root
        if output:
            data['output'] = output
    return parse_spec(data, source=path,
                      default_name=osp.splitext(osp.basename(path))[0])


# ------------------------------------------------------------- planning
def load_config(config: str, cfg_options: Sequence[str]):
    """The merged config (file + cfg-options), as train.py sees it.

    Custom imports are not executed: only plain values are read here.
    """
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(config, import_custom_modules=False)
    if cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *cfg_options]).o)
    return cfg


def describe_config(cfg) -> Dict[str, str]:
    """Model, backbone and contrastive loss of an MMSeg config, named as in
    the CT paper's Table 1.

    backbone: 'Swin' / 'PoolFormer' (else the type) from
    ``model.backbone.type``; model: 'DCSwin' or 'DC<backbone>' for
    DCSwinHead (the paper's DCPoolFormer), 'UnetFormer' (the paper's
    spelling) for UNetFormerHead, else the decode head type without 'Head';
    ct_loss: '-' without CT, else 'CL' / 'InfoNCE' from
    ``ct_head.loss_decode.mode``.
    """
    model_cfg = cfg['model']
    backbone = str(model_cfg['backbone']['type']).split('.')[-1]
    for name in ('Swin', 'PoolFormer'):
        if name in backbone:
            backbone = name
    head_type = str(model_cfg['decode_head']['type']).split('.')[-1]
    if head_type == 'DCSwinHead':
        model = 'DCSwin' if backbone == 'Swin' else f'DC{backbone}'
    elif head_type == 'UNetFormerHead':
        model = 'UnetFormer'
    else:
        model = head_type[:-len('Head')] if head_type.endswith('Head') \
            else head_type
    ct_head = cfg.get('ct_head')
    if not ct_head or 'CTRunner' not in str(cfg.get('runner_type', '')):
        loss = '-'
    else:
        mode = (ct_head.get('loss_decode') or {}).get('mode', 'cl')
        loss = {'cl': 'CL', 'infonce': 'InfoNCE'}.get(mode, mode)
    return dict(model=model, backbone=backbone, ct_loss=loss)


def evaluator_changes(cfg, where: str) -> Dict[str, Any]:
    """What the test config changes in ``test_evaluator`` so that
    tools/test.py writes the per-class IoU file: MMSeg's IoUMetric becomes
    PerClassIoUMetric (the same metric + the per-class results)."""
    evaluator = cfg.get('test_evaluator')
    if not isinstance(evaluator, dict):
        raise SpecError(f'{where}: test_evaluator: {evaluator!r}; a study '
                        'needs one IoUMetric or PerClassIoUMetric (a dict)')
    kind = str(evaluator.get('type', '')).split('.')[-1]
    if kind == 'PerClassIoUMetric':
        return {}
    if kind == 'IoUMetric':
        return dict(type='PerClassIoUMetric')
    raise SpecError(f'{where}: test_evaluator.type: {kind or None!r}; a '
                    'study reads the per-class IoU of IoUMetric or '
                    'PerClassIoUMetric')


@dataclass
class Run:
    """One (arm, seed) of a study and where its files go."""
    arm: Arm
    seed: int
    work_dir: str
    result_file: str
    max_iters: int
    train_options: List[str]
    labels: Dict[str, str]
    evaluator_changes: Dict[str, Any]
    custom_imports: List[str]
    batch_note: str = ''

    @property
    def name(self) -> str:
        return f'{self.arm.name} seed {self.seed}'

    @property
    def final_checkpoint(self) -> str:
        return osp.join(self.work_dir, f'iter_{self.max_iters}.pth')

    @property
    def dumped_config(self) -> str:
        """The config MMEngine's runner writes into the work_dir."""
        return osp.join(self.work_dir, osp.basename(self.arm.config))

    @property
    def per_class_file(self) -> str:
        return osp.join(self.work_dir, TEST_DIR, PER_CLASS_NAME)

    @property
    def trained(self) -> bool:
        return osp.isfile(self.final_checkpoint)

    @property
    def resumable(self) -> bool:
        # MMEngine's CheckpointHook records the latest checkpoint here;
        # train.py --resume reads it.
        return osp.isfile(osp.join(self.work_dir, 'last_checkpoint'))

    @property
    def finished(self) -> bool:
        return osp.isfile(self.result_file)


def plan_runs(study: Study, cli_options: Sequence[str] = (),
              gpus: int = 1) -> List[Run]:
    """One :class:`Run` per (arm, seed), seed-major (every arm's seed 0
    before any seed 1: a first comparison is ready early).

    Options given to train.py, the later winning: the study's own
    (``randomness.seed``, ``ct_head.seed`` for CT configs, the per-GPU
    batch), then the spec's ``cfg_options``, the arm's, and
    ``cli_options`` last.
    """
    user_common = list(study.cfg_options) + list(cli_options)
    if 'randomness.seed' in option_keys(user_common) or any(
            'randomness.seed' in option_keys(a.cfg_options)
            for a in study.arms):
        raise SpecError(f'{study.source}: cfg_options: randomness.seed is '
                        'set per run from the seeds; remove it')
    configs = {}
    for index, arm in enumerate(study.arms):
        where = f'{study.source}: arms[{index}] ({arm.name})'
        if not osp.isfile(arm.config):
            raise SpecError(f'{where}: config: file not found: {arm.config}'
                            f' (relative to {os.getcwd()})')
        user = list(study.cfg_options) + arm.cfg_options + list(cli_options)
        try:
            cfg = load_config(arm.config, user)
        except Exception as exc:
            raise SpecError(f'{where}: config {arm.config} with cfg_options '
                            f'{user} does not load: {exc}') from exc
        max_iters = (cfg.get('train_cfg') or {}).get('max_iters')
        if not isinstance(max_iters, int):
            raise SpecError(f'{where}: train_cfg.max_iters: {max_iters!r}; '
                            'a study needs an iteration-based training')
        configs[arm.name] = (cfg, user, where)
    runs = []
    for seed in sorted({s for arm in study.arms for s in arm.seeds}):
        for arm in study.arms:
            if seed not in arm.seeds:
                continue
            cfg, user, where = configs[arm.name]
            keys = option_keys(user)
            own = [f'randomness.seed={seed}']
            if cfg.get('ct_head') is not None and 'ct_head.seed' not in keys:
                # CT's draws have their own seed (exact resume); it follows
                # the run's seed so that the seeds differ in CT too
                own.append(f'ct_head.seed={seed}')
            batch_note = ''
            total = cfg.get('total_batch_size')
            if total is not None and 'train_dataloader.batch_size' not in keys:
                if total % gpus:
                    raise SpecError(
                        f'{where}: total_batch_size {total} is not divisible '
                        f'by --gpus {gpus}; set train_dataloader.batch_size '
                        'in cfg_options')
                own.append(f'train_dataloader.batch_size={total // gpus}')
                batch_note = f'batch {gpus} GPU(s) x {total // gpus} = {total}'
            imports = (cfg.get('custom_imports') or {}).get('imports', [])
            runs.append(Run(
                arm=arm, seed=seed,
                work_dir=study.work_dir(arm.name, seed),
                result_file=study.result_file(arm.name, seed),
                max_iters=int(cfg.train_cfg.max_iters),
                train_options=own + user,
                labels=describe_config(cfg),
                evaluator_changes=evaluator_changes(cfg, where),
                custom_imports=[imports] if isinstance(imports, str)
                else list(imports),
                batch_note=batch_note))
    return runs


# ------------------------------------------------------------ commands
@dataclass
class Launch:
    """How the runs are launched (the command line's options)."""
    gpus: int = 1
    jobs: int = 1
    gpu_ids: Optional[List[int]] = None
    port: int = 29500
    amp: bool = False
    no_test: bool = False
    retest: bool = False
    keep_going: bool = False
    dry_run: bool = False


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


def launcher_prefix(gpus: int, port: int) -> List[str]:
    """Interpreter (+ torchrun for several GPUs) that runs an MMSeg tool."""
    if gpus == 1:
        return [sys.executable]
    # `python -m torch.distributed.run` is torchrun, with this interpreter.
    return [sys.executable, '-m', 'torch.distributed.run',
            f'--nproc_per_node={gpus}', f'--master_port={port}']


def train_command(run: Run, launch: Launch, port: int) -> List[str]:
    cmd = [*launcher_prefix(launch.gpus, port), mmseg_tool('train.py'),
           run.arm.config, '--work-dir', run.work_dir]
    if run.resumable:
        cmd.append('--resume')
    if launch.amp:
        cmd.append('--amp')
    if launch.gpus > 1:
        cmd += ['--launcher', 'pytorch']
    return cmd + ['--cfg-options', *run.train_options]


def evaluate_config_text(run: Run, base: str, split: str = 'test') -> str:
    """A config that is ``base`` with the per-class IoU written to the
    run's file (and ct_mmseg imported, which registers the metric); with
    ``split='val'`` it scores the config's ``val_dataloader`` instead of its
    ``test_dataloader``."""
    imports = list(run.custom_imports)
    if 'ct_mmseg' not in imports:
        imports.append('ct_mmseg')
    evaluator = dict(run.evaluator_changes,
                     results_file=osp.abspath(run.per_class_file))
    text = ('# Written by ct_mmseg.study: the trained config, tested with '
            'the per-class IoU\n# written to a file.\n'
            f'_base_ = [{osp.abspath(base)!r}]\n'
            f'custom_imports = dict(imports={imports!r}, '
            'allow_failed_imports=False)\n'
            f'test_evaluator = {evaluator!r}\n')
    if split == 'val':
        text += ('# a pilot: scored on the validation split, the test split '
                 'is not read\ntest_dataloader = _base_.val_dataloader\n')
    return text


def evaluate_command(run: Run, launch: Launch, port: int,
                 will_train: bool) -> List[str]:
    """tools/test.py on the final checkpoint, through the run's test
    config (:func:`evaluate_config_text`).

    The test config's base is the config the training dumped into the
    work_dir (it holds the seed, the cfg-options and, for CT, the head, so
    the checkpoint loads strictly); without one (trained elsewhere), the
    arm's config plus the training options.
    """
    cmd = [*launcher_prefix(launch.gpus, port), mmseg_tool('test.py'),
           osp.join(run.work_dir, TEST_CONFIG_NAME), run.final_checkpoint,
           '--work-dir', osp.join(run.work_dir, TEST_DIR)]
    if launch.gpus > 1:
        cmd += ['--launcher', 'pytorch']
    if not (will_train or osp.isfile(run.dumped_config)):
        cmd += ['--cfg-options', *run.train_options]
    return cmd


def evaluate_config_base(run: Run) -> str:
    return run.dumped_config if osp.isfile(run.dumped_config) \
        else run.arm.config


# ---------------------------------------------------------- execution
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


def mean_iou(iou: Dict[str, Optional[float]],
             exclude: Sequence[str] = ()) -> Optional[float]:
    """Mean IoU over the classes not in ``exclude``; a class with no IoU
    (None or NaN: absent from labels and predictions) is skipped, as MMSeg
    does. None if no class is left."""
    kept = [v for c, v in iou.items() if c not in exclude and v is not None
            and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None


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


# ------------------------------------------------------------ results
def read_results(study: Study, warn: Callable[[str], Any] = print
                 ) -> Dict[str, Dict[int, dict]]:
    """``{arm: {seed: result}}`` of the finished runs, in spec order; a
    missing run is left out with a warning."""
    results = OrderedDict()
    for arm in study.arms:
        results[arm.name] = OrderedDict()
        for seed in arm.seeds:
            path = study.result_file(arm.name, seed)
            if not osp.isfile(path):
                warn(f'warning: {arm.name} seed {seed}: no result '
                     f'({path}), left out')
                continue
            with open(path) as f:
                result = json.load(f)
            for key in ('iou', 'classes', 'seed', 'arm'):
                if key not in result:
                    raise ResultError(f'{path}: no {key!r}; not a study '
                                      'result file')
            if (result['arm'], result['seed']) != (arm.name, seed):
                raise ResultError(f'{path}: holds arm {result["arm"]!r} '
                                  f'seed {result["seed"]}, expected '
                                  f'{arm.name!r} seed {seed}')
            results[arm.name][seed] = result
    return results


# --------------------------------------------------------- statistics
def mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def sample_std(values: Sequence[float]) -> Optional[float]:
    """Standard deviation with Bessel's correction (ddof=1); None for
    fewer than two values."""
    if len(values) < 2:
        return None
    m = mean(values)
    return math.sqrt(sum((v - m)**2 for v in values) / (len(values) - 1))


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


@dataclass
class ArmSummary:
    """A table row: one arm over its finished seeds."""
    arm: str
    config: str
    labels: Dict[str, str]
    seeds: List[int]
    miou: Dict[int, float]  # per seed, classes excluded as the study says
    class_means: Dict[str, Optional[float]]
    miou_all: Dict[int, float]  # per seed, every class (MMSeg's mIoU)
    baseline: Optional[str] = None
    comparison: Optional[Comparison] = None

    @property
    def miou_mean(self):
        return mean(list(self.miou.values()))

    @property
    def miou_std(self):
        return sample_std(list(self.miou.values()))

    @property
    def miou_all_mean(self):
        return mean(list(self.miou_all.values()))

    @property
    def miou_all_std(self):
        return sample_std(list(self.miou_all.values()))


def summarize_study(study: Study, results: Dict[str, Dict[int, dict]],
                    exclude: Optional[Sequence[str]] = None
                    ) -> List[ArmSummary]:
    """One :class:`ArmSummary` per arm with results, each compared with its
    baseline arm (:func:`compare`). ``exclude``: classes left out of the
    mIoU (default: the study's ``exclude_classes``)."""
    exclude = list(study.exclude_classes if exclude is None else exclude)
    classes = None
    rows = OrderedDict()
    for arm in study.arms:
        runs = results.get(arm.name) or {}
        if not runs:
            continue
        for seed, result in runs.items():
            if classes is None:
                classes = list(result['classes'])
                unknown = sorted(set(exclude) - set(classes))
                if unknown:
                    raise ResultError(f'excluded classes {unknown} are not '
                                      f'classes of the results ({classes})')
            elif list(result['classes']) != classes:
                raise ResultError(f'{arm.name} seed {seed}: classes '
                                  f'{result["classes"]} differ from the '
                                  f'other runs\' {classes}')
        miou, miou_all = OrderedDict(), OrderedDict()
        for seed, result in runs.items():
            value = mean_iou(result['iou'], exclude)
            if value is not None:
                miou[seed] = value
            value = mean_iou(result['iou'])
            if value is not None:
                miou_all[seed] = value
        class_means = OrderedDict()
        for name in classes:
            values = [r['iou'][name] for r in runs.values()
                      if r['iou'].get(name) is not None
                      and math.isfinite(r['iou'][name])]
            class_means[name] = mean(values)
        first = next(iter(runs.values()))
        rows[arm.name] = ArmSummary(
            arm=arm.name, config=arm.config, labels=first.get('labels') or {},
            seeds=list(runs), miou=miou, class_means=class_means,
            miou_all=miou_all, baseline=arm.baseline)
    for row in rows.values():
        if row.baseline is not None and row.baseline in rows:
            row.comparison = compare_on_one_machine(
                row, rows[row.baseline], results)
    return list(rows.values())


def run_machine(result: dict) -> Optional[str]:
    """The machine a result file was made on (its ``machine.id``)."""
    return (result.get('machine') or {}).get('id')


def compare_on_one_machine(row: ArmSummary, base: ArmSummary,
                           results: Dict[str, Dict[int, dict]]
                           ) -> Comparison:
    """:func:`compare` of two rows, never pairing a seed whose two runs
    were made on different machines (a config and seed repeat exactly on
    one machine only): such a seed is left out of the arm's values."""
    other = [s for s in row.miou if s in base.miou and
             run_machine(results[row.arm][s]) !=
             run_machine(results[base.arm][s])]
    comparison = compare({s: v for s, v in row.miou.items()
                          if s not in other}, base.miou)
    if other:
        note = f'seeds {",".join(map(str, other))} ran on another machine ' \
            'than the baseline\'s, left out'
        comparison.note = '; '.join(filter(None, [comparison.note, note]))
    return comparison


# ------------------------------------------------- the paper's Table 1
# The CT paper's Table 1, transcribed from Jyhne, Andersen & Goodwin,
# "Contrastive Transformer: Contrastive Learning Scheme with Transformer
# Innate Patches", arXiv:2303.14806 (v1, 28 March 2023), section 4.1,
# Table 1 ("Evaluation results on the ISPRS Potsdam dataset for all
# models"): mIoU (5 classes, Clutter excluded; std over 3 runs of unstated
# kind) and the class IoUs averaged over the runs; the last field is the
# table's "Source" column.
# Note: for the DCPoolFormer CL and InfoNCE rows the published mIoU (0.7620,
# 0.7625) is not the mean of the published class columns (0.7590, 0.7574);
# the values are transcribed as printed (tests/test_potsdam_study.py).
POTSDAM_CLASSES = ('impervious_surface', 'building', 'low_vegetation',
                   'tree', 'car', 'clutter')
PAPER_COLUMNS = ('model', 'backbone', 'ct_loss', 'miou', 'std',
                 *POTSDAM_CLASSES, 'source')
PAPER_TABLE1 = [
    ('DCSwin', 'Swin', '-', 0.7728, 0.0016,
     0.8284, 0.8852, 0.7309, 0.7292, 0.6906, 0.3182, '[16]'),
    ('DCSwin', 'Swin', 'CL', 0.7740, 0.0019,
     0.8303, 0.8900, 0.7284, 0.7267, 0.6945, 0.3073, 'Ours'),
    ('DCSwin', 'Swin', 'InfoNCE', 0.7730, 0.0013,
     0.8263, 0.8855, 0.7257, 0.7311, 0.6924, 0.3200, 'Ours'),
    ('UnetFormer', 'Swin', '-', 0.7687, 0.0011,
     0.8293, 0.8891, 0.7218, 0.7191, 0.6842, 0.3153, '[17]'),
    ('UnetFormer', 'Swin', 'CL', 0.7674, 0.0017,
     0.8275, 0.8874, 0.7204, 0.7145, 0.6874, 0.3181, 'Ours'),
    ('UnetFormer', 'Swin', 'InfoNCE', 0.7715, 0.0006,
     0.8300, 0.8896, 0.7266, 0.7217, 0.6896, 0.3337, 'Ours'),
    ('DCPoolFormer', 'PoolFormer', '-', 0.7559, 0.0021,
     0.8113, 0.8694, 0.7084, 0.7053, 0.6853, 0.2752, '[16, 20]'),
    ('DCPoolFormer', 'PoolFormer', 'CL', 0.7620, 0.0055,
     0.8155, 0.8732, 0.7068, 0.7108, 0.6887, 0.2897, 'Ours'),
    ('DCPoolFormer', 'PoolFormer', 'InfoNCE', 0.7625, 0.0068,
     0.8126, 0.8735, 0.7076, 0.7080, 0.6855, 0.2701, 'Ours'),
]
PAPER = [dict(zip(PAPER_COLUMNS, row)) for row in PAPER_TABLE1]
PAPER_RUNS = 3
PAPER_EXCLUDED = ['clutter']


def table_lines(rows: List[ArmSummary], with_paper: bool) -> List[Any]:
    """The table's rows: ours in spec order; with ``with_paper`` each of the
    paper's rows right under the first of ours with the same model and CT
    loss, and the paper's rows without one of ours at the end."""
    if not with_paper:
        return list(rows)

    def key(labels):
        return labels.get('model'), labels.get('ct_loss')

    papers = {(p['model'], p['ct_loss']): p for p in PAPER}
    out, placed = [], set()
    for row in rows:
        out.append(row)
        paper = papers.get(key(row.labels))
        if paper is not None and key(row.labels) not in placed:
            out.append(paper)
            placed.add(key(row.labels))
    return out + [p for k, p in papers.items() if k not in placed]


# ------------------------------------------------------------- output
def fmt(value: Optional[float], digits: int = 4, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return 'n/a'
    return f'{value:+.{digits}f}' if sign else f'{value:.{digits}f}'


def fmt_p(p: Optional[float]) -> str:
    if p is None:
        return 'n/a'
    return '<0.001' if p < 0.001 else f'{p:.3f}'


def header_note(study: Study, classes: List[str], exclude: Sequence[str],
                with_paper: bool) -> str:
    kept = [c for c in classes if c not in exclude]
    counted = (f'the {len(kept)} classes {", ".join(kept)} '
               f'({", ".join(exclude)} excluded)') if exclude else \
        'all classes'
    note = (
        f'Study {study.name} ({study.source}), {study.split} split. mIoU: '
        f'mean IoU over {counted}, per seed; shown as mean ± sample std (ddof=1) '
        'over the seeds. Class columns: IoU averaged over the seeds. '
        'Values are fractions. ')
    if exclude:
        note += 'mIoU (all): MMSeg\'s mean over all classes. '
    note += (
        f'Δ mIoU: the arm\'s mean mIoU minus its baseline\'s, with a '
        f'{CONFIDENCE:.0%} confidence interval from the t distribution, '
        'and the two-sided p-value of the test named in the last column: '
        'paired t-test (scipy.stats.ttest_rel) when both arms ran the same '
        'seeds, Welch\'s t-test (scipy.stats.ttest_ind, equal_var=False, '
        'Welch–Satterthwaite df) otherwise.')
    if with_paper:
        note += (' Rows marked paper: the CT paper\'s Table 1 '
                 '(arXiv:2303.14806), 5-class mIoU (Clutter excluded) over '
                 '3 runs, its σ of unstated kind.')
    return note


def table_classes(rows: List[ArmSummary]) -> List[str]:
    return list(rows[0].class_means) if rows else list(POTSDAM_CLASSES)


def to_markdown(study: Study, rows: List[ArmSummary],
                exclude: Sequence[str], with_paper: bool = False) -> str:
    classes = table_classes(rows)
    with_all = bool(exclude)
    columns = ['Arm', 'Model', 'Backbone', 'CT loss', 'n (seeds)',
               'mIoU (mean ± std)', *classes] + \
        (['mIoU (all)'] if with_all else []) + \
        ['Baseline', 'Δ mIoU [95% CI]', 'p', 'Test', 'Source']
    align = ['---'] * 5 + ['---:'] * (1 + len(classes) + with_all) + \
        ['---', '---', '---:', '---', '---']
    lines = [header_note(study, classes, exclude, with_paper), '',
             '| ' + ' | '.join(columns) + ' |', '|' + '|'.join(align) + '|']
    for row in table_lines(rows, with_paper):
        if isinstance(row, ArmSummary):
            comparison = row.comparison
            delta = p = test = ''
            if comparison is not None:
                delta = fmt(comparison.diff, sign=True)
                if comparison.ci_low is not None:
                    delta += (f' [{fmt(comparison.ci_low, sign=True)}, '
                              f'{fmt(comparison.ci_high, sign=True)}]')
                p, test = fmt_p(comparison.p), comparison.test_label
            cells = [row.arm, row.labels.get('model', '?'),
                     row.labels.get('backbone', '?'),
                     row.labels.get('ct_loss', '?'),
                     f'{len(row.seeds)} ({",".join(map(str, row.seeds))})',
                     f'{fmt(row.miou_mean)} ± {fmt(row.miou_std)}',
                     *[fmt(row.class_means[c]) for c in classes]] + \
                ([f'{fmt(row.miou_all_mean)} ± {fmt(row.miou_all_std)}']
                 if with_all else []) + \
                [row.baseline or '', delta, p, test, 'ours']
        else:
            cells = ['', row['model'], row['backbone'], row['ct_loss'],
                     str(PAPER_RUNS), f'{fmt(row["miou"])} ± '
                     f'{fmt(row["std"])}',
                     *[fmt(row.get(c)) for c in classes]] + \
                ([''] if with_all else []) + \
                ['', '', '', '', f'paper {row["source"]}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def csv_fields(classes: List[str]) -> List[str]:
    return ['source', 'arm', 'config', 'model', 'backbone', 'ct_loss',
            'num_seeds', 'seeds', 'excluded_classes', 'miou_mean',
            'miou_std', *[f'iou_{c}' for c in classes], 'miou_all_mean',
            'miou_all_std', 'baseline', 'test', 'diff', 'ci_low', 'ci_high',
            't', 'df', 'p_value']


def to_csv(study: Study, rows: List[ArmSummary], exclude: Sequence[str],
           with_paper: bool = False) -> str:
    """One CSV row per table line (``source``: ours / paper); numbers
    unrounded, empty where there is none."""
    def num(value):
        return '' if value is None else repr(float(value))

    classes = table_classes(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=csv_fields(classes),
                            lineterminator='\n')
    writer.writeheader()
    for row in table_lines(rows, with_paper):
        if isinstance(row, ArmSummary):
            c = row.comparison
            record = dict(
                source='ours', arm=row.arm, config=row.config,
                model=row.labels.get('model', ''),
                backbone=row.labels.get('backbone', ''),
                ct_loss=row.labels.get('ct_loss', ''),
                num_seeds=len(row.seeds),
                seeds=' '.join(map(str, row.seeds)),
                excluded_classes=' '.join(exclude),
                miou_mean=num(row.miou_mean), miou_std=num(row.miou_std),
                miou_all_mean=num(row.miou_all_mean),
                miou_all_std=num(row.miou_all_std),
                baseline=row.baseline or '',
                test='' if c is None else c.test,
                diff=num(None if c is None else c.diff),
                ci_low=num(None if c is None else c.ci_low),
                ci_high=num(None if c is None else c.ci_high),
                t=num(None if c is None else c.t),
                df=num(None if c is None else c.df),
                p_value=num(None if c is None else c.p))
            for name in classes:
                record[f'iou_{name}'] = num(row.class_means[name])
        else:
            record = dict(source='paper', model=row['model'],
                          backbone=row['backbone'], ct_loss=row['ct_loss'],
                          num_seeds=PAPER_RUNS,
                          excluded_classes=' '.join(PAPER_EXCLUDED),
                          miou_mean=num(row['miou']),
                          miou_std=num(row['std']))
            for name in classes:
                record[f'iou_{name}'] = num(row.get(name))
        writer.writerow(record)
    return out.getvalue()


def make_table(study: Study, exclude: Optional[Sequence[str]] = None,
               with_paper: bool = False,
               warn: Callable[[str], Any] = print):
    """(markdown, csv) of the study's finished runs."""
    exclude = list(study.exclude_classes if exclude is None else exclude)
    rows = summarize_study(study, read_results(study, warn), exclude)
    if with_paper:
        classes = table_classes(rows)
        if rows and classes != list(POTSDAM_CLASSES):
            raise ResultError(f'the paper\'s rows are Potsdam\'s; these '
                              f'results have the classes {classes}')
        if exclude != PAPER_EXCLUDED:
            warn(f'warning: the paper\'s mIoU excludes {PAPER_EXCLUDED}, '
                 f'ours here excludes {exclude or "nothing"}')
    return (to_markdown(study, rows, exclude, with_paper),
            to_csv(study, rows, exclude, with_paper), rows)
