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

The CPU shims are those of tests/test_ddp.py
(``e2e_utils.train_on_two_gloo_ranks``): the launcher creates the gloo
group itself (mmengine's ``init_dist`` calls ``torch.cuda.set_device``), and
the wrapper gets ``device_ids=None`` (the strategy's default is the GPU of
LOCAL_RANK).
"""
import copy
import json
import math

from e2e_utils import tiny_config, train_on_two_gloo_ranks

FLEX_CONFIG = '''
_base_ = [{base!r}]
train_cfg = dict(max_iters={iters}, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval={iters}))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# FlexibleRunner's key: CTRunner hands the config to CTFlexibleRunner
strategy = dict(
    type='DDPStrategy',
    model_wrapper=dict(type='MMDistributedDataParallel', device_ids=None,
                       broadcast_buffers=False))
custom_hooks = [dict(type='ct_mmseg.ContrastiveTransformerHook'),
                dict(type='RankProbeHook')]
'''
ITERS = 2


def test_flexible_runner_trains_ct_on_two_gloo_processes(demo_data,
                                                        tmp_path):
    base = tiny_config(tmp_path, demo_data)
    cfg = tmp_path / 'flex_ct.py'
    cfg.write_text(FLEX_CONFIG.format(base=base, iters=ITERS))
    work = tmp_path / 'work'
    probes, log = train_on_two_gloo_ranks(cfg, work, tmp_path)
    before = {p['rank']: p for p in probes if p['event'] == 'before'}
    after = {p['rank']: p for p in probes if p['event'] == 'after'}
    assert sorted(before) == sorted(after) == [0, 1]
    for probe in before.values():
        assert probe['runner'] == 'CTFlexibleRunner'
        assert probe['wrapper'] == 'MMDistributedDataParallel'
        assert probe['world'] == 2
    for rank in (0, 1):
        records = [p['ct'] for p in probes
                   if p['event'] == 'iter' and p['rank'] == rank]
        assert len(records) == ITERS, rank
        for record in records:
            assert sorted(record) == [f'aux_1.loss_ct_s{i}' for i in range(4)]
            assert all(math.isfinite(v) and v >= 0 for v in record.values())
    # one model across the ranks, and training moved it
    assert (work / f'iter_{ITERS}.pth').is_file()  # the strategy saved it
    assert before[0]['params'] == before[1]['params']
    assert after[0]['params'] == after[1]['params']
    assert after[0]['params'] != before[0]['params']
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
