"""Run planning: a :class:`Study`'s (arm, seed) runs, read from the arms'
MMSeg configs.

:func:`plan_runs` gives ``List[Run]``, seed-major; each :class:`Run` knows
its work_dir, result file, ``max_iters``, the ``key=value`` options given to
train.py, its Table 1 labels (:func:`describe_config`: ``{model, backbone,
ct_loss}``) and what the test config changes (:func:`evaluator_changes`).
mmengine is imported only to read the configs (:func:`load_config`).
"""
import argparse
import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

from .spec import Arm, SpecError, Study, option_keys

# Files in a run's work_dir
TEST_CONFIG_NAME = 'study_test_config.py'  # in a run's work_dir
TEST_DIR = 'test'  # tools/test.py's work_dir inside a run's work_dir
PER_CLASS_NAME = 'per_class_iou.json'  # PerClassIoUMetric's file, in TEST_DIR


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
