"""The CT head alone on a batch's backbone features: time, allocator peak,
number of kernel-like aten ops and torch's top-ops table (``--profile``)."""
import torch

from .memory import head_peak_bytes, walk
from .models import ct_head_of
from .timing import autocast, head_step, median_ms, synchronize, timed

# aten ops that do no work of their own: views, allocations, dtype no-ops
NO_WORK = ('view', 'reshape', 'as_strided', 'alias', 'transpose', 'permute',
           'expand', 'select', 'slice', 'unsqueeze', 'squeeze', 'split',
           'detach', 'flatten', 'narrow', 'unbind', 'empty', 'lift',
           'resolve', '::t', '::to', '_to_copy', 'contiguous', 'clone',
           'linear', 'matmul', 'zeros', 'ones', 'full', 'new_', 'result_type',
           'item', '_local_scalar', 'is_nonzero')


def _does_work(name):
    return name.startswith('aten::') and not any(s in name for s in NO_WORK)


def kernel_like_ops(fn):
    """aten ops that do work (views, allocations, dtype no-ops left out) in
    ``fn()``: on a GPU roughly one kernel each."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as p:
        fn()
    count = 0
    for node in walk(p.profiler.kineto_results.experimental_event_tree()):
        if node.tag == _EventType.TorchOp and _does_work(node.name) and \
                not any(c.tag == _EventType.TorchOp and _does_work(c.name)
                        for c in walk(node.children)):
            count += 1
    return count


def profile_ct_head(ct_model, inputs, samples, amp_dtype, device, repeats=5):
    """The CT head's loss forward + backward on this batch's backbone
    features: time, allocator peak, op count, top ops.

    Returns:
        dict: fwd_bwd_ms_median, step_peak_bytes, kernel_like_ops,
        feature_bytes, top_ops (the profiler's table, a string).
    """
    from torch.profiler import ProfilerActivity, profile
    head = ct_head_of(ct_model)
    with torch.no_grad(), autocast(device, amp_dtype):
        feats = ct_model.backbone(inputs)
    feats = [f.detach().requires_grad_() for f in feats]
    step = head_step(head, feats, samples)
    step()
    times = [timed(step, device)[0] for _ in range(repeats)]
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        step()
        synchronize(device)
    sort = 'self_cuda_time_total' if device.type == 'cuda' else \
        'self_cpu_time_total'
    table = prof.key_averages().table(sort_by=sort, row_limit=15)
    return dict(fwd_bwd_ms_median=median_ms(times),
                step_peak_bytes=int(head_peak_bytes(step, device)),
                kernel_like_ops=kernel_like_ops(step),
                feature_bytes=sum(f.numel() * f.element_size()
                                  for f in feats),
                top_ops=table)
