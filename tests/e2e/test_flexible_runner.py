"""CT under MMEngine's FlexibleRunner: 2 CPU processes, gloo, MMSeg's
tools/train.py.

The CT fragment's ``runner_type='ct_mmseg.CTRunner'`` gives a
:class:`~ct_mmseg.runner.CTFlexibleRunner` when the config sets ``strategy``
(FlexibleRunner's key); both runners share one injection. The test trains the
tiny Swin-UPerNet demo config (a stock MMSeg Swin + the fragment) for 2
iterations under a FlexibleRunner strategy and checks, per rank, the runner
class, the wrapper, the CT losses of all four stages, and that the ranks'
weights stayed identical while training moved them.

The strategy is ``DDPStrategy``. ``FSDPStrategy`` is the one large backbones
need, but FSDP refuses a CPU-only machine: torch 2.14 with "FSDP needs a
non-CPU accelerator device, but no accelerator device is detected" (measured
with this same test), torch 2.1 with "Found no NVIDIA driver on your system"
(measured with a one-process group); so it runs on GPU machines only
(docs/distributed.md).
Both strategies go through the same ``CTFlexibleRunner.from_cfg``.

The CPU shims are those of tests/e2e/test_ddp.py
(``e2e_utils.train_on_two_gloo_ranks``): the launcher creates the gloo
group itself (mmengine's ``init_dist`` calls ``torch.cuda.set_device``), and
the wrapper gets ``device_ids=None`` (the strategy's default is the GPU of
LOCAL_RANK).
"""
import copy
import json

from e2e_utils import (check_two_rank_ct_training, tiny_config,
                       train_tiny_ct_on_two_gloo_ranks)

FLEX_CONFIG = '''
# FlexibleRunner's key: CTRunner hands the config to CTFlexibleRunner
strategy = dict(
    type='DDPStrategy',
    model_wrapper=dict(type='MMDistributedDataParallel', device_ids=None,
                       broadcast_buffers=False))
'''
ITERS = 2


def test_flexible_runner_trains_ct_on_two_gloo_processes(demo_data,
                                                        tmp_path):
    work, probes, log = train_tiny_ct_on_two_gloo_ranks(
        FLEX_CONFIG, 'flex_ct.py', demo_data, tmp_path, ITERS)
    # both ranks ran every iteration with CT's 4 stage losses; one model
    # across the ranks, and training moved it
    before, _ = check_two_rank_ct_training(probes, ITERS)
    for probe in before.values():
        assert probe['runner'] == 'CTFlexibleRunner'
        assert probe['wrapper'] == 'MMDistributedDataParallel'
        assert probe['world'] == 2
    assert (work / f'iter_{ITERS}.pth').is_file()  # the strategy saved it
    assert 'Contrastive Transformer: stages in_index=[0, 1, 2, 3]' in log


def test_ct_runner_picks_the_runner_class_by_the_strategy_key(
        demo_data, tmp_path):
    """One injection, two runner classes: no `strategy` -> CTRunner (a
    Runner), `strategy` -> CTFlexibleRunner (a FlexibleRunner); both build
    the same CT model config."""
    from mmengine.config import Config
    from mmengine.runner import FlexibleRunner, Runner

    from ct_mmseg.registry import RUNNERS
    from ct_mmseg.runner import CTFlexibleRunner, CTRunner, prepare_ct_config
    cfg = Config.fromfile(tiny_config(tmp_path, demo_data))
    assert cfg.runner_type == 'ct_mmseg.CTRunner'
    assert RUNNERS.get(cfg.runner_type) is CTRunner
    assert RUNNERS.get('ct_mmseg.CTFlexibleRunner') is CTFlexibleRunner
    assert issubclass(CTRunner, Runner)
    assert issubclass(CTFlexibleRunner, FlexibleRunner)
    prepared = prepare_ct_config(cfg)
    heads = prepared.model.auxiliary_head
    assert heads[-1].type == 'ContrastiveTransformerHead'
    assert 'ct_mmseg' in prepared.custom_imports.imports
    # the input is left as it was
    assert not isinstance(cfg.model.auxiliary_head, list)

    built = {}
    for name, extra in (('runner', {}),
                        ('flexible', dict(strategy=dict(type='DDPStrategy')))):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.merge_from_dict(dict(extra, work_dir=str(tmp_path / name),
                                     launcher='none'))
        built[name] = RUNNERS.build(run_cfg)
    assert type(built['runner']) is CTRunner
    assert type(built['flexible']) is CTFlexibleRunner
    # the plain runner built the CT model; the flexible one builds its model
    # in train(), from the same CT model config
    assert any(type(m).__name__ == 'ContrastiveTransformerHead'
               for m in built['runner'].model.modules())
    model_cfgs = [json.dumps(r.cfg.model.to_dict(), sort_keys=True,
                             default=str) for r in built.values()]
    assert model_cfgs[0] == model_cfgs[1]
