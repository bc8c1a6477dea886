"""A study spec: the file that names the arms, their seeds and where the
runs go, read into a :class:`Study` (see :func:`load_spec` and
``docs/studies.md``).

Types: :class:`Arm` (config + cfg-options + seeds + baseline),
:class:`Study` (arms, work_root, output, split, excluded classes, stopping
rule), :class:`StopRule`; cfg-options are ``List[str]`` of ``key=value``
text, as on MMSeg's command line. Errors are :class:`SpecError`, naming the
file and the key.
"""
import json
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

# Folder names: arm names become folders, so no slashes or spaces.
ARM_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.+-]*')
SPEC_KEYS = ('name', 'seeds', 'arms', 'cfg_options', 'exclude_classes',
             'work_root', 'output', 'split', 'stop')
STOP_KEYS = ('arm', 'half_width', 'min_pairs')
# What a study's runs are scored on: the held-out test split, or, for a
# pilot that must not read the test, the validation split.
SPLITS = ('test', 'val')
ARM_KEYS = ('name', 'config', 'cfg_options', 'baseline', 'seeds')


class SpecError(ValueError):
    """A study spec (or a config it names) cannot be used as written."""


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
