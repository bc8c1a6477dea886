"""Peak memory of a training step and the resident state.

* CUDA: ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus ``memory_allocated`` at the start.
* CPU: torch's CPU allocator reports every allocation and free to the
  profiler (``profile_memory=True``) with the running total of allocated
  bytes; the peak of that running total over one step is the exact CPU
  counterpart of ``max_memory_allocated``. It counts tensor memory only, the
  same thing CUDA's figure counts, and it is deterministic, unlike the
  process's RSS (glibc keeps freed pages, and ``ru_maxrss`` never goes down,
  so it cannot separate two models in one process). Scratch memory that
  oneDNN allocates outside torch's allocator is not counted; on CUDA, the
  cuBLAS/cuDNN workspaces are (they come from torch's caching allocator).
"""
import torch

from .timing import synchronize


def walk(nodes):
    """Every node of a profiler event tree, depth first."""
    for node in nodes:
        yield node
        yield from walk(node.children)


def cpu_allocator_peak(fn):
    """Peak bytes held by tensors while ``fn()`` runs, above the start
    (torch's CPU allocator, as reported to the profiler)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    events = sorted(
        (n for n in walk(p.profiler.kineto_results.experimental_event_tree())
         if n.tag == _EventType.Allocation
         and n.extra_fields.device.type == 'cpu'),
        key=lambda n: n.start_time_ns)
    if not events:
        return 0
    # The running total is the reporter's, kept across profiling sessions:
    # frees made while no profiler runs are not subtracted from it. Measure
    # from its value at this session's start (first event minus its size).
    first = events[0].extra_fields
    start = first.total_allocated - first.alloc_size
    return max(0, max(n.extra_fields.total_allocated for n in events) - start)


def peak_bytes(fn, device):
    """Peak tensor bytes of ``fn()`` above what was allocated at its start."""
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    return cpu_allocator_peak(fn)


def resident_bytes(model, optimizer):
    """Parameters, buffers and optimizer state (each storage once)."""
    seen = {}
    tensors = list(model.parameters()) + list(model.buffers())
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if torch.is_tensor(v)]
    for t in tensors:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())


def step_memory(models, steps, device):
    """Per name, the step's peak above its start (after ``zero_grad``), the
    resident state and their sum, in bytes.

    Args:
        models (dict): ``{name: model}``.
        steps (dict): ``{name: step()}`` from
            :func:`~ct_mmseg.benchmark.timing.make_train_step`.

    Returns:
        dict: ``{name: dict(step_peak_bytes, resident_bytes, total_bytes)}``.
    """
    memory = {}
    for name, step in steps.items():
        step.optimizer.zero_grad(set_to_none=True)
        peak = peak_bytes(step, device)
        step.optimizer.zero_grad(set_to_none=True)
        resident = resident_bytes(models[name], step.optimizer)
        memory[name] = dict(step_peak_bytes=int(peak),
                            resident_bytes=int(resident),
                            total_bytes=int(peak + resident))
    return memory


def head_peak_bytes(step, device):
    """Peak bytes of a :func:`~ct_mmseg.benchmark.timing.head_step`, its
    gradients reset first."""
    step.reset()
    return peak_bytes(step.measured, device)


def max_rss_mb():
    """The process's peak resident set size so far, in MB (Linux)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
