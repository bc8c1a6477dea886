"""What Contrastive Transformer costs: training step, memory, inference.

Default mode: one MMSeg config is built twice in one process,

* **baseline**: the config's own ``model`` (the CT injection skipped), and
* **CT**: the same config after
  :func:`ct_mmseg.config_injection.add_ct_to_config`,

with identical weights for every shared module (the CT model gets the
baseline's state dict; only the CT head's projections are its own). Then:

* **training step time** (forward + backward + optimizer step, the config's
  optimizer and paramwise settings): after warm-up the two models alternate
  step by step, A B B A A B ... (each pair swaps the order, so neither model
  always runs first), and the median over ``--steps`` steps of each is
  reported. Interleaving in one process cancels drift (clock boosts, other
  jobs on the machine). On the CPU the process CPU time is reported next to
  the wall time: on a shared machine it is the steadier of the two.
* **peak memory of a training step**: the most bytes held by tensors during
  one step, above what was held when it started (after ``zero_grad``), plus
  the resident state (parameters, buffers, optimizer state).

  - CUDA: ``torch.cuda.max_memory_allocated`` after
    ``reset_peak_memory_stats``, minus ``memory_allocated`` at the start.
  - CPU: torch's CPU allocator reports every allocation and free to the
    profiler (``profile_memory=True``) with the running total of allocated
    bytes; the peak of that running total over one step is the exact CPU
    counterpart of ``max_memory_allocated``. It counts tensor memory only,
    the same thing CUDA's figure counts, and it is deterministic, unlike the
    process's RSS (glibc keeps freed pages, and ``ru_maxrss`` never goes down,
    so it cannot separate two models in one process). Scratch memory that
    oneDNN allocates outside torch's allocator is not counted; on CUDA, the
    cuBLAS/cuDNN workspaces are (they come from torch's caching allocator).
* **inference**: parameters of the modules that run in ``model.predict``
  (hooks record them), matmul/conv FLOPs of ``model.predict`` on one image
  (``torch.utils.flop_counter.FlopCounterMode``), and whether both models
  predict exactly the same logits.

It prints the figures and the ratios CT / baseline and writes them as JSON to
``--out``. Targets on a GPU: step time <= 1.03x, memory <= 1.03x, inference
exactly 1.00x.

``--sweep`` measures CT alone instead: the CT head's loss forward + backward
on fixed backbone-shaped features, for image sizes x numbers of classes
present (synthetic GT with exactly k classes), and writes a CSV and Markdown
table and a PNG plot into ``--work-dir``. ``--sweep-unbounded`` adds the same
head with no ``num_samples`` bound (every eligible token drawn, as in the
authors' CL) for comparison.

Examples::

    # the target setting (GPU)
    python tools/benchmark_ct.py --dtype bf16 --out work_dirs/bench/bf16.json
    # a CPU-sized run on the narrow demo Swin
    python tools/benchmark_ct.py \\
        configs/ct/demo/swin-tiny_upernet_ct_potsdam-demo.py \\
        --img-size 256 --batch-size 4 --steps 10 --threads 1 \\
        --out work_dirs/bench/cpu.json
    # CT alone across image sizes and classes present
    python tools/benchmark_ct.py --sweep --batch-size 2 \\
        --work-dir work_dirs/bench/sweep
"""
import argparse
import contextlib
import copy
import csv
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time
import warnings

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

import torch  # noqa: E402

from ct_mmseg.analysis import inference_cost  # noqa: E402

DEFAULT_CONFIG = osp.join(
    REPO, 'configs', 'ct', 'swin-tiny_upernet_ct_4xb4-80k_potsdam-512x512.py')
FRAGMENT = osp.join(REPO, 'configs', '_base_', 'contrastive_transformer.py')
DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help='MMSeg config (with or without the CT fragment)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='override config keys, as in '
                        "MMSeg's tools/train.py")
    parser.add_argument('--img-size', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--classes-per-image', type=int, default=8,
                        help='classes in each synthetic GT mask (a handful, '
                        'as in real batches; see realistic_gt)')
    parser.add_argument('--ct-mode', choices=('cl', 'infonce'), default=None,
                        help="override ct_head.loss_decode.mode")
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='fp32',
                        help='autocast dtype of the training step')
    parser.add_argument('--steps', type=int, default=20,
                        help='timed steps per model (0: skip the timing)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps per model first')
    parser.add_argument('--device', default=None,
                        help='default: cuda when available, else cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    parser.add_argument('--profile', action='store_true',
                        help='also profile the CT head alone on the '
                        "backbone's features of this batch")
    parser.add_argument('--out', default=None, help='JSON file to write')
    sweep = parser.add_argument_group('sweep (CT head alone)')
    sweep.add_argument('--sweep', action='store_true')
    sweep.add_argument('--work-dir', default='work_dirs/benchmark_ct_sweep')
    sweep.add_argument('--sizes', type=int, nargs='+',
                       default=[256, 512, 768, 1024])
    sweep.add_argument('--classes', type=int, nargs='+',
                       default=[2, 6, 12],
                       help='numbers of classes present in the batch GT')
    sweep.add_argument('--dataset-classes', type=int, nargs='+',
                       default=[6, 19, 150],
                       help="the dataset's class counts K to build the head "
                       'with (6 Potsdam, 19 Cityscapes, 150 ADE20K)')
    sweep.add_argument('--losses', nargs='+', default=['cl', 'infonce'],
                       choices=('cl', 'infonce'))
    sweep.add_argument('--repeats', type=int, default=3,
                       help='timed repeats per point (median)')
    sweep.add_argument('--sweep-unbounded', action='store_true',
                       help='also run the head with no num_samples bound')
    sweep.add_argument('--unbounded-max-size', type=int, default=512,
                       help='largest image size for the unbounded head')
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- #
# building the two models
# --------------------------------------------------------------------------- #
def load_config(path, options):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def model_configs(cfg, ct_mode=None):
    """(baseline model config, CT model config) of one MMSeg config."""
    from mmengine.config import Config

    from ct_mmseg.config_injection import _is_ct_head, add_ct_to_config
    baseline = copy.deepcopy(cfg.model)
    aux = baseline.get('auxiliary_head')
    if isinstance(aux, (list, tuple)) and any(_is_ct_head(h) for h in aux):
        raise ValueError('the config already has a CT head in model; give '
                         'a config that gets CT from the fragment (ct_head)')
    ct_cfg = copy.deepcopy(cfg)
    if ct_cfg.get('ct_head') is None:  # a baseline config: use the fragment
        ct_cfg.ct_head = copy.deepcopy(Config.fromfile(FRAGMENT).ct_head)
    if ct_mode is not None:
        loss = ct_cfg.ct_head.setdefault('loss_decode', {})
        loss['mode'] = ct_mode
        if ct_mode != 'cl':  # a CL-only option of reproduction configs
            loss.pop('pair_selection', None)
    add_ct_to_config(ct_cfg)
    return baseline, ct_cfg.model


def shared_state(baseline, ct_model):
    """The baseline's state dict under the CT model's parameter names.

    CT appends its head to ``auxiliary_head``: a single baseline auxiliary
    head ``auxiliary_head.*`` becomes ``auxiliary_head.0.*``.
    """
    ct_keys = set(ct_model.state_dict())
    mapped = {}
    for key, value in baseline.state_dict().items():
        if key in ct_keys:
            mapped[key] = value
        elif key.startswith('auxiliary_head.') and \
                'auxiliary_head.0.' + key[15:] in ct_keys:
            mapped['auxiliary_head.0.' + key[15:]] = value
        else:
            raise KeyError(f'baseline parameter {key} has no counterpart in '
                           'the CT model')
    return mapped


def build_pair(cfg, device, seed, ct_mode=None):
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    from ct_mmseg.models import ContrastiveTransformerHead
    base_cfg, ct_cfg = model_configs(cfg, ct_mode)
    torch.manual_seed(seed)
    baseline = MODELS.build(base_cfg)
    ct_model = MODELS.build(ct_cfg)
    state = shared_state(baseline, ct_model)
    missing, unexpected = ct_model.load_state_dict(state, strict=False)
    ct_params = {f'{name}.{key}' for name, m in ct_model.named_modules()
                 if isinstance(m, ContrastiveTransformerHead)
                 for key in m.state_dict()}
    assert not unexpected and set(missing) <= ct_params, (missing, unexpected)
    # one process, no process group: SyncBN -> BN, as MMEngine does
    models = [revert_sync_batchnorm(m).to(device).train()
              for m in (baseline, ct_model)]
    return models


def build_optimizer(cfg, model):
    """The config's optimizer with its paramwise settings (no AMP wrapper:
    autocast and the grad scaler are applied by the step itself)."""
    from mmengine.optim import build_optim_wrapper
    wrapper_cfg = cfg.get('optim_wrapper', None) or {}
    optimizer = copy.deepcopy(wrapper_cfg.get(
        'optimizer', dict(type='AdamW', lr=6e-5, weight_decay=0.01)))
    plain = dict(type='OptimWrapper', optimizer=optimizer)
    if wrapper_cfg.get('paramwise_cfg'):
        plain['paramwise_cfg'] = copy.deepcopy(wrapper_cfg['paramwise_cfg'])
    if wrapper_cfg.get('constructor'):
        plain['constructor'] = wrapper_cfg['constructor']
    return build_optim_wrapper(model, plain).optimizer


def blocky_gt(batch, size, classes, block=32, generator=None):
    """(B, size, size) labels: ``block``-pixel squares of the given classes,
    each of them present at least once."""
    cells = -(-size // block)
    classes = torch.as_tensor(classes)
    pick = torch.randint(0, len(classes), (batch, cells, cells),
                         generator=generator)
    flat = pick.view(-1)
    flat[:len(classes)] = torch.arange(len(classes))[:flat.numel()]
    gt = classes[pick].repeat_interleave(block, 1).repeat_interleave(block, 2)
    return gt[:, :size, :size].contiguous()


def zipf_classes(num_classes, count, generator=None):
    """``count`` distinct class ids of ``num_classes``, frequent ones likelier.

    Real datasets are long-tailed (ADE20K's wall, floor and sky are in most
    images, most of its 150 classes in few): class c is drawn with weight
    1 / (c + 1).
    """
    weights = 1.0 / torch.arange(1, num_classes + 1, dtype=torch.float)
    return torch.multinomial(weights, min(count, num_classes),
                             replacement=False, generator=generator)


def realistic_gt(batch, size, num_classes, classes_per_image=8,
                 batch_classes=None, regions_per_class=3, generator=None):
    """(B, size, size) labels shaped like real segmentation batches.

    Each image holds a handful of the dataset's classes (not all K of
    them), laid out as irregular regions of varied size (a Voronoi partition
    of random seed points, ``regions_per_class`` seeds per class), so there
    are mixed patches at region borders and small regions that the coarse
    stages do not see purely.

    Args:
        batch, size (int): B and the square image size.
        num_classes (int): K of the dataset.
        classes_per_image (int): classes in each image (at most K).
        batch_classes (int, optional): classes present in the whole batch;
            each image then takes its classes from that set, all of them
            covered. Default: each image draws its own classes from all K
            (long-tailed, see :func:`zipf_classes`).
        regions_per_class (int): Voronoi seeds per class in an image.
        generator (torch.Generator, optional): for reproducible masks.

    Returns:
        Tensor: long (B, size, size).
    """
    pool = None
    if batch_classes is not None:
        pool = zipf_classes(num_classes, batch_classes, generator)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float),
                            torch.arange(size, dtype=torch.float),
                            indexing='ij')
    pixels = torch.stack([ys.flatten(), xs.flatten()], 1)
    masks = []
    for image in range(batch):  # a handful of images: small, bounded
        if pool is None:
            classes = zipf_classes(num_classes, classes_per_image, generator)
        else:
            take = min(classes_per_image, len(pool))
            # rotate through the pool so that every class is in some image
            start = (image * take) % len(pool)
            classes = pool.roll(-start)[:take]
        seeds = torch.rand(len(classes) * regions_per_class, 2,
                           generator=generator) * size
        owner = classes.repeat(regions_per_class)
        nearest = torch.cdist(pixels, seeds).argmin(1)
        masks.append(owner[nearest].view(size, size))
    return torch.stack(masks)


def make_batch(batch, size, num_classes, device, seed, classes_per_image=8):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=gen)
    gt = realistic_gt(batch, size, num_classes, classes_per_image,
                      generator=gen)
    samples = []
    for mask in gt:
        sample = SegDataSample(metainfo=dict(
            img_shape=(size, size), pad_shape=(size, size),
            ori_shape=(size, size), padding_size=[0, 0, 0, 0]))
        sample.gt_sem_seg = PixelData(data=mask[None].to(device))
        samples.append(sample)
    return inputs.to(device), samples


# --------------------------------------------------------------------------- #
# measuring
# --------------------------------------------------------------------------- #
def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def make_train_step(model, optimizer, inputs, samples, amp_dtype, device):
    scaler = None
    if amp_dtype == torch.float16:
        # torch.amp.GradScaler is torch >= 2.3; older torch has the CUDA one
        scaler = torch.amp.GradScaler(device.type) if hasattr(
            torch.amp, 'GradScaler') else torch.cuda.amp.GradScaler()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp_dtype):
            losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss

    step.optimizer = optimizer
    return step


def _autocast(device, amp_dtype):
    """autocast to ``amp_dtype``, or no context at all for fp32: torch 2.1
    refuses ``torch.autocast('cpu', dtype=torch.float32)`` even when it is
    disabled."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def timed(fn, device):
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node.children)


def cpu_allocator_peak(fn):
    """Peak bytes held by tensors while ``fn()`` runs, above the start
    (torch's CPU allocator, as reported to the profiler)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    events = sorted(
        (n for n in _walk(p.profiler.kineto_results.experimental_event_tree())
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


def median_ms(values):
    return round(statistics.median(values) * 1e3, 2) if values else None


def paired_ratio_interval(base_times, ct_times, level=0.95):
    """Mean of the per-round CT/baseline time ratios and its t-interval.

    The two steps of a round run back to back, so each round's ratio
    cancels slow drift of the machine; the rounds are the samples. On a
    shared CPU a step varies by a few per cent, so a ratio near 1.02 needs
    the interval, not one median, to say which side of a target it is on.

    Returns:
        tuple[float, float, float] | None: (mean, low, high); None with
        fewer than two rounds.
    """
    from ct_mmseg.study import t_half_width
    ratios = [c / b for b, c in zip(base_times, ct_times)]
    if len(ratios) < 2:
        return None
    mean = statistics.fmean(ratios)
    half = t_half_width(ratios, level)
    return round(mean, 4), round(mean - half, 4), round(mean + half, 4)


def ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def benchmark(args):
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    amp_dtype = DTYPES[args.dtype]
    cfg = load_config(args.config, args.cfg_options)
    baseline, ct_model = build_pair(cfg, device, args.seed, args.ct_mode)
    names = ('baseline', 'ct')
    models = dict(zip(names, (baseline, ct_model)))
    num_classes = _decode_classes(cfg)
    inputs, samples = make_batch(args.batch_size, args.img_size, num_classes,
                                 device, args.seed, args.classes_per_image)
    present = torch.unique(torch.cat([s.gt_sem_seg.data.flatten().cpu()
                                      for s in samples]))
    steps = {name: make_train_step(model, build_optimizer(cfg, model), inputs,
                                   samples, amp_dtype, device)
             for name, model in models.items()}
    result = dict(
        config=osp.relpath(osp.abspath(args.config), REPO),
        cfg_options=args.cfg_options, img_size=args.img_size,
        batch_size=args.batch_size, dataset_classes=num_classes,
        classes_per_image=args.classes_per_image,
        classes_present_in_batch=int(present.numel()),
        ct_mode=ct_head_of(ct_model).loss_decode.mode,
        dtype=args.dtype, device=_device_name(
            device), torch=torch.__version__, threads=torch.get_num_threads(),
        steps=args.steps, warmup=args.warmup, order='A B B A A B ...')

    # inference first, on fresh weights: identical by construction
    infer = {}
    logits = {}
    for name, model in models.items():
        infer[name], logits[name] = inference_cost(model, inputs[:1])
    same = torch.equal(logits['baseline'], logits['ct'])

    # warm-up, then interleaved timing
    for _ in range(args.warmup):
        for name in names:
            steps[name]()
    walls = {n: [] for n in names}
    cpus = {n: [] for n in names}
    losses = {n: [] for n in names}
    for i in range(args.steps):
        for name in (names if i % 2 == 0 else names[::-1]):
            wall, cpu = timed(lambda: losses[name].append(
                float(steps[name]().detach())), device)
            walls[name].append(wall)
            cpus[name].append(cpu)

    memory = {}
    if not args.no_memory:
        for name in names:
            step = steps[name]
            step.optimizer.zero_grad(set_to_none=True)
            peak = peak_bytes(step, device)
            step.optimizer.zero_grad(set_to_none=True)
            resident = resident_bytes(models[name], step.optimizer)
            memory[name] = dict(step_peak_bytes=int(peak),
                                resident_bytes=int(resident),
                                total_bytes=int(peak + resident))

    for name in names:
        entry = dict(
            step_ms_median=median_ms(walls[name]),
            step_ms_all=[round(t * 1e3, 2) for t in walls[name]],
            inference_flops=infer[name]['flops'],
            inference_params=infer[name]['params'],
            params_total=infer[name]['params_total'])
        if device.type == 'cpu':
            entry['step_cpu_ms_median'] = median_ms(cpus[name])
            entry['step_cpu_ms_all'] = [round(t * 1e3, 2) for t in cpus[name]]
        if losses[name]:
            entry['loss_last'] = losses[name][-1]
        entry.update(memory.get(name, {}))
        result[name] = entry
    b, c = result['baseline'], result['ct']
    # the two steps of one round ran back to back: their ratio cancels drift
    paired = [ct / base for base, ct in zip(walls['baseline'], walls['ct'])]
    result['ratios'] = dict(
        step_time=ratio(c['step_ms_median'], b['step_ms_median']),
        step_time_paired=round(statistics.median(paired), 4)
        if paired else None,
        # mean and 95 % t-interval of the per-round ratios: CPU time on the
        # CPU (the steadier figure on a shared machine), else wall time
        step_time_paired_ci95=paired_ratio_interval(
            *((cpus if device.type == 'cpu' else walls)[n]
              for n in names)),
        step_cpu_time=ratio(c.get('step_cpu_ms_median'),
                            b.get('step_cpu_ms_median')),
        memory_total=ratio(c.get('total_bytes'), b.get('total_bytes')),
        memory_step_peak=ratio(c.get('step_peak_bytes'),
                               b.get('step_peak_bytes')),
        inference_flops=ratio(c['inference_flops'], b['inference_flops']),
        inference_params=ratio(c['inference_params'],
                               b['inference_params']))
    result['inference_logits_identical'] = bool(same)

    if args.profile:
        result['ct_head_profile'] = profile_ct_head(ct_model, inputs,
                                                    samples, amp_dtype,
                                                    device)
    _print_result(result)
    _write_json(result, args.out)
    return result


def _decode_classes(cfg):
    decode = cfg.model.decode_head
    if isinstance(decode, (list, tuple)):
        decode = decode[-1]
    return int(decode.num_classes)


def _device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({platform.processor() or platform.machine()}, ' \
           f'{os.cpu_count()} cores)'


# --------------------------------------------------------------------------- #
# the CT head alone
# --------------------------------------------------------------------------- #
def ct_head_of(model):
    from ct_mmseg.models import ContrastiveTransformerHead
    return next(m for m in model.modules()
                if isinstance(m, ContrastiveTransformerHead))


def head_step(head, feats, samples):
    """The CT head's loss forward + backward; ``step.measured`` leaves out
    the reset of the gradients, for the memory peak: freeing tensors made
    before the measurement would otherwise blur it."""
    def reset():
        for feat in feats:
            feat.grad = None
        head.zero_grad(set_to_none=True)

    def measured():
        losses = head.loss(feats, samples, None)
        sum(losses.values()).backward()

    def step():
        reset()
        measured()
    step.reset, step.measured = reset, measured
    return step


def head_peak_bytes(step, device):
    step.reset()
    return peak_bytes(step.measured, device)


def kernel_like_ops(fn):
    """aten ops that do work (views, allocations, dtype no-ops left out) in
    ``fn()``: on a GPU roughly one kernel each."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    skip = ('view', 'reshape', 'as_strided', 'alias', 'transpose', 'permute',
            'expand', 'select', 'slice', 'unsqueeze', 'squeeze', 'split',
            'detach', 'flatten', 'narrow', 'unbind', 'empty', 'lift',
            'resolve', '::t', '::to', '_to_copy', 'contiguous', 'clone',
            'linear', 'matmul', 'zeros', 'ones', 'full', 'new_', 'result_type',
            'item', '_local_scalar', 'is_nonzero')

    def counts(name):
        return name.startswith('aten::') and not any(s in name for s in skip)
    with profile(activities=[ProfilerActivity.CPU]) as p:
        fn()
    count = 0
    for node in _walk(p.profiler.kineto_results.experimental_event_tree()):
        if node.tag == _EventType.TorchOp and counts(node.name) and not any(
                c.tag == _EventType.TorchOp and counts(c.name)
                for c in _walk(node.children)):
            count += 1
    return count


def profile_ct_head(ct_model, inputs, samples, amp_dtype, device, repeats=5):
    """The CT head's loss forward + backward on this batch's backbone
    features: time, allocator peak, op count, top ops."""
    from torch.profiler import ProfilerActivity, profile
    head = ct_head_of(ct_model)
    with torch.no_grad(), _autocast(device, amp_dtype):
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


def sweep(args):
    import numpy as np
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    cfg = load_config(args.config, args.cfg_options)
    from mmseg.registry import MODELS
    _, ct_cfg = model_configs(cfg)
    aux = ct_cfg.auxiliary_head
    head_cfg = copy.deepcopy(next(
        h for h in (aux if isinstance(aux, (list, tuple)) else [aux])
        if 'ContrastiveTransformerHead' in h['type']))
    channels, strides = head_cfg.in_channels, head_cfg.strides
    variants = [('bounded', head_cfg.num_samples)]
    if args.sweep_unbounded:
        variants.append(('unbounded', None))
    os.makedirs(args.work_dir, exist_ok=True)
    rows = []
    gen = torch.Generator().manual_seed(args.seed)
    for size in args.sizes:
        feats = [torch.randn(args.batch_size, c, -(-size // s),
                             -(-size // s), generator=gen).to(device)
                 .requires_grad_() for c, s in zip(channels, strides)]
        feature_bytes = sum(f.numel() * f.element_size() for f in feats)
        tokens = [f.shape[0] * f.shape[2] * f.shape[3] for f in feats]
        for k in args.classes:
            # one GT per (size, k): every dataset K and loss sees the same
            # classes present, relabelled onto the first k ids of each K so
            # that the comparison across K holds the GT fixed
            gt = realistic_gt(args.batch_size, size, max(k, 1),
                              args.classes_per_image, batch_classes=k,
                              generator=gen)
            samples = make_head_samples(gt.to(device))
            for num_classes, mode, (variant, num_samples) in (
                    (K, m, v) for K in args.dataset_classes
                    for m in args.losses for v in variants):
                if k > num_classes or (variant == 'unbounded' and
                                       size > args.unbounded_max_size):
                    continue
                bound = num_samples or max(tokens)
                torch.manual_seed(args.seed)
                head = MODELS.build(dict(
                    head_cfg, num_classes=num_classes, num_samples=bound,
                    seed=args.seed, loss_decode=dict(
                        head_cfg.get('loss_decode', {}), mode=mode))
                ).to(device).train()
                step = head_step(head, feats, samples)
                step()  # warm-up
                walls, cpus = zip(*[timed(step, device)
                                    for _ in range(args.repeats)])
                peak = head_peak_bytes(step, device)
                row = dict(variant=variant, loss=mode, device=device.type,
                           dataset_classes=num_classes, img_size=size,
                           batch_size=args.batch_size, classes_present=k,
                           num_samples=num_samples or 'all',
                           fwd_bwd_ms=median_ms(walls),
                           # process CPU time: on a shared CPU the steadier
                           # figure (wall time includes waiting for a core)
                           fwd_bwd_cpu_ms=median_ms(cpus),
                           peak_mb=round(peak / 2**20, 1),
                           feature_mb=round(feature_bytes / 2**20, 1),
                           # the features' gradient is part of the peak; in
                           # a model the decode head's gradient for the same
                           # features is summed into one buffer
                           peak_minus_feature_grad_mb=round(
                               (peak - feature_bytes) / 2**20, 1),
                           tokens=sum(tokens),
                           # meaningful with one point per process only
                           process_peak_rss_mb=round(_max_rss_mb()))
                rows.append(row)
                print(', '.join(f'{k_}={v}' for k_, v in row.items()),
                      flush=True)
                del head, step
    _write_sweep(rows, args, device, np)
    return rows


def _max_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_head_samples(gt):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for mask in gt:
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=mask[None])
        samples.append(sample)
    return samples


def _write_sweep(rows, args, device, np):
    keys = list(rows[0])
    with open(osp.join(args.work_dir, 'sweep.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f'CT head alone, loss forward + backward, batch '
             f'{args.batch_size}, device {_device_name(device)}, torch '
             f'{torch.__version__}, config '
             f'`{osp.relpath(osp.abspath(args.config), REPO)}`.', '',
             '| ' + ' | '.join(keys) + ' |',
             '|' + '---|' * len(keys)]
    lines += ['| ' + ' | '.join(str(r[k]) for k in keys) + ' |'
              for r in rows]
    with open(osp.join(args.work_dir, 'sweep.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    _write_json(dict(rows=rows, device=_device_name(device),
                     torch=torch.__version__),
                osp.join(args.work_dir, 'sweep.json'))
    ratios = sweep_ratios(rows)
    if ratios:
        keys = list(ratios[0])
        with open(osp.join(args.work_dir, 'sweep_ratios.md'), 'w') as f:
            f.write('| ' + ' | '.join(keys) + ' |\n|' + '---|' * len(keys) +
                    '\n' + ''.join('| ' + ' | '.join(str(r[k]) for k in keys)
                                   + ' |\n' for r in ratios))
        print('\n'.join(f"{r['what']}: {r['img_size']} px, "
                        f"k={r['classes_present']}, {r['which']}: time "
                        f"{r['time_ratio']}, memory {r['memory_ratio']}"
                        for r in ratios))
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the env
        print('matplotlib missing: no plot')
        return
    bounded = [r for r in rows if r['variant'] == 'bounded']
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    lines = sorted({(r['loss'], r['dataset_classes'], r['classes_present'])
                    for r in bounded})
    cmap = plt.get_cmap('viridis')
    ks = sorted({k for _, _, k in lines})
    markers = {K: m for K, m in zip(sorted({K for _, K, _ in lines}),
                                    'os^D')}
    for loss, K, k in lines:
        pts = sorted((r for r in bounded if (r['loss'], r['dataset_classes'],
                                              r['classes_present']) ==
                      (loss, K, k)), key=lambda r: r['img_size'])
        x = [r['img_size'] for r in pts]
        style = dict(linestyle='-' if loss == 'cl' else '--',
                     marker=markers[K], color=cmap(ks.index(k) /
                                                   max(len(ks) - 1, 1)),
                     label=f'{loss}, K={K}, present={k}')
        axes[0].plot(x, [r['fwd_bwd_ms'] for r in pts], **style)
        axes[1].plot(x, [r['peak_minus_feature_grad_mb'] for r in pts],
                     **style)
    for ax, title in zip(axes, ('time, forward + backward (ms)',
                                'peak memory above input and feature '
                                'gradient (MB)')):
        ax.set_xlabel('image size (px)')
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=6, ncol=2)
    fig.suptitle('CT head alone: dataset classes K x classes present x size '
                 f'x loss (batch {args.batch_size}, {_device_name(device)}); '
                 'markers: K, line style: loss, colour: classes present')
    fig.tight_layout()
    fig.savefig(osp.join(args.work_dir, 'sweep.png'), dpi=110)
    plt.close(fig)


def sweep_ratios(rows):
    """The cost ratios of a sweep: K_max / K_min at the same classes
    present (per loss), and InfoNCE / CL (per K), time and memory."""
    bounded = [r for r in rows if r['variant'] == 'bounded']
    index = {(r['loss'], r['dataset_classes'], r['img_size'],
              r['classes_present']): r for r in bounded}
    ks = sorted({r['dataset_classes'] for r in bounded})
    out = []

    def add(what, which, num, den, size, k):
        # CPU: process CPU time, steadier than wall time on a shared machine
        key = 'fwd_bwd_cpu_ms' if 'cpu' in str(num.get('device', 'cpu')) \
            else 'fwd_bwd_ms'
        out.append(dict(
            what=what, which=which, img_size=size, classes_present=k,
            time_ratio=round(num[key] / den[key], 3),
            memory_ratio=round(num['peak_mb'] / max(den['peak_mb'], 1e-9),
                               3)))
    for (loss, K, size, k), row in sorted(index.items()):
        if K == ks[-1] and len(ks) > 1 and (loss, ks[0], size, k) in index:
            add(f'K={ks[-1]} / K={ks[0]}', loss, row,
                index[(loss, ks[0], size, k)], size, k)
        if loss == 'infonce' and ('cl', K, size, k) in index:
            add('infonce / cl', f'K={K}', row, index[('cl', K, size, k)],
                size, k)
    return out


# --------------------------------------------------------------------------- #
def _print_result(result):
    b, c, r = result['baseline'], result['ct'], result['ratios']
    print(f"\nconfig {result['config']}  device {result['device']}  "
          f"{result['img_size']} px, batch {result['batch_size']}, "
          f"{result['dtype']}, {result['steps']} steps each, interleaved")
    if r.get('step_time_paired') is not None:
        print(f"step time CT/base, median over the interleaved pairs: "
              f"{r['step_time_paired']:.4f}")
    if r.get('step_time_paired_ci95'):
        mean, low, high = r['step_time_paired_ci95']
        print(f"step {'CPU ' if result['device'].startswith('cpu') else ''}"
              f"time CT/base, mean over the pairs: {mean:.4f} "
              f"[95 % CI {low:.4f}, {high:.4f}]")
    rows = [('step time, median (ms)', 'step_ms_median', 'step_time'),
            ('step CPU time, median (ms)', 'step_cpu_ms_median',
             'step_cpu_time'),
            ('step peak above start (MB)', 'step_peak_bytes',
             'memory_step_peak'),
            ('resident: params+buffers+optim (MB)', 'resident_bytes', None),
            ('peak total (MB)', 'total_bytes', 'memory_total'),
            ('inference FLOPs (G, 1 image)', 'inference_flops',
             'inference_flops'),
            ('inference params (M)', 'inference_params', 'inference_params'),
            ('all params (M)', 'params_total', None)]
    print(f"{'':38s}{'baseline':>14s}{'CT':>14s}{'CT/base':>10s}")
    for label, key, rkey in rows:
        if b.get(key) is None:
            continue
        scale = 2**20 if 'bytes' in key else 1e9 if 'flops' in key else \
            1e6 if 'params' in key else 1
        rv = r.get(rkey) if rkey else None
        print(f'{label:38s}{b[key] / scale:14.2f}{c[key] / scale:14.2f}'
              f"{(f'{rv:.4f}' if rv is not None else ''):>10s}")
    print('inference logits identical: '
          f"{result['inference_logits_identical']}")
    prof = result.get('ct_head_profile')
    if prof:
        print(f"\nCT head alone on this batch's backbone features: "
              f"{prof['fwd_bwd_ms_median']} ms forward + backward, peak "
              f"{prof['step_peak_bytes'] / 2**20:.1f} MB above the features "
              f"({prof['feature_bytes'] / 2**20:.1f} MB), "
              f"{prof['kernel_like_ops']} kernel-like ops")
        print(prof['top_ops'])


def _write_json(result, path):
    if not path:
        return
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(result, f, indent=1)
    print(f'written: {path}')


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from mmengine.logging import MMLogger
    # a quiet current logger: no per-parameter optimizer lines
    MMLogger.get_instance('benchmark_ct', log_level='WARNING')
    import ct_mmseg  # noqa: F401  registers the CT modules
    from mmseg.utils import register_all_modules
    register_all_modules()
    if args.sweep:
        return sweep(args)
    return benchmark(args)


if __name__ == '__main__':
    main()
