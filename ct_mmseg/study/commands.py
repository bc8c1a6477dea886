"""Command lines: how a :class:`~ct_mmseg.study.planning.Run` is trained
and tested by MMSeg's own ``tools/train.py`` and ``tools/test.py``.

Commands are ``List[str]`` (argv, no shell); :class:`Launch` holds the
command line's options (GPUs, jobs, ports, amp, ...);
:func:`evaluate_config_text` is the text of the run's test config, which
writes the per-class IoU file.
"""
import os.path as osp
import sys
from dataclasses import dataclass
from typing import List, Optional

from .planning import TEST_CONFIG_NAME, TEST_DIR, Run


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
    """Path of MMSeg's bundled ``tools/<name>`` (train.py, test.py); exits
    with the reason when it is missing."""
    from ..mmseg_tools import MMSegToolNotFound
    from ..mmseg_tools import mmseg_tool as find
    try:
        return find(name)
    except MMSegToolNotFound as error:
        raise SystemExit(str(error))


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
