"""CT under DistributedDataParallel: 2 CPU processes, gloo, MMSeg's train.py.

The launch is the MMEngine way, ``torchrun --nproc_per_node 2
<mmseg>/.mim/tools/train.py CFG --launcher pytorch``, with two shims that a
CPU-only machine needs and a GPU machine does not:

* mmengine 0.10.7's ``init_dist('pytorch')`` calls ``torch.cuda.set_device``
  unconditionally, which fails without a GPU. ``Runner.setup_env`` skips
  ``init_dist`` when a process group already exists, so a small launcher
  (written below) creates the gloo group from torchrun's environment and then
  runs MMSeg's ``tools/train.py`` unchanged (``runpy``).
* MMEngine wraps the model with ``device_ids=[LOCAL_RANK]``, which torch's DDP
  rejects for a CPU module, so the config sets ``model_wrapper_cfg`` to
  MMEngine's default wrapper and arguments with ``device_ids=None``.
  ``find_unused_parameters`` is *not* set: DDP's default (False) applies, so a
  parameter without a gradient would stop the run at the second iteration.

The launcher (``e2e_utils.train_on_two_gloo_ranks``) also registers a probe
hook that writes, per rank, the wrapper, its ``find_unused_parameters``, the
SyncBN count, each iteration's CT losses and a hash of the parameters before
and after training (one file per rank).
"""
import math

from e2e_utils import (check_two_rank_ct_training, scalars,
                       train_tiny_ct_on_two_gloo_ranks)

DDP_CONFIG = '''
# MMEngine's default DDP wrapper and arguments, minus device_ids (a CPU
# module takes none); find_unused_parameters stays DDP's default, False.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False)
'''
ITERS = 3


def test_two_process_gloo_ddp_trains_ct_without_unused_parameters(
        demo_data, tmp_path):
    work, probes, log = train_tiny_ct_on_two_gloo_ranks(
        DDP_CONFIG, 'ddp_ct.py', demo_data, tmp_path, ITERS)
    # every rank ran every iteration with finite CT losses of all 4 stages,
    # and DDP kept their weights identical (gradients were all-reduced)
    # while training moved them
    before, per_rank = check_two_rank_ct_training(probes, ITERS)
    for probe in before.values():
        assert probe['wrapper'] == 'MMDistributedDataParallel'
        assert probe['world'] == 2
        assert probe['find_unused'] is False
        assert probe['syncbn'] == 0
    # the config asks for no find_unused_parameters anywhere
    dumped = (work / 'ddp_ct.py').read_text()
    assert 'find_unused_parameters' not in dumped
    # the ranks saw different data: their losses differ
    assert per_rank[0] != per_rank[1]

    # rank 0's log has the per-stage CT losses, counted in the total
    records = [r for r in scalars(work) if 'loss' in r]
    assert [r['step'] for r in records] == list(range(1, ITERS + 1))
    for record in records:
        for stage in range(4):
            assert math.isfinite(record[f'aux_1.loss_ct_s{stage}'])
    assert 'Contrastive Transformer: stages in_index=[0, 1, 2, 3]' in log
