"""The default benchmark: baseline vs CT, training step, memory, inference.

With ``--against ct`` the reference is CT at the config's head settings and
the other model CT with ``--ct-options``: the cost of an option on top of
CT.

One MMSeg config is built twice in one process (:mod:`.models`), then

* **training step time** (forward + backward + optimizer step, the config's
  optimizer and paramwise settings), interleaved A B B A (:mod:`.timing`),
  median over the rounds of each model and the paired ratio's t-interval
  (:mod:`.ratios`);
* **peak memory of a training step** above its start, plus the resident
  state (:mod:`.memory`);
* **inference**: parameters of the modules that run in ``model.predict``,
  its matmul/conv FLOPs on one image and whether both models predict
  exactly the same logits (:func:`ct_mmseg.inference_cost.inference_cost`).
"""
import torch

from ..inference_cost import inference_cost
from .memory import step_memory
from .models import (build_optimizer, build_pair, ct_head_of, decode_classes,
                     load_config)
from .profiling import profile_ct_head
from .ratios import step_ratios
from .report import config_label, print_result, write_json
from .synthetic_gt import make_batch
from .timing import (device_name, interleaved_times, make_train_step,
                     median_ms, pick_device)

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
NAMES = ('baseline', 'ct')


def run_header(args, num_classes, classes_present, ct_mode, device):
    """The settings part of the result (what was measured, where)."""
    return dict(
        config=config_label(args.config),
        cfg_options=args.cfg_options, img_size=args.img_size,
        batch_size=args.batch_size, dataset_classes=num_classes,
        classes_per_image=args.classes_per_image,
        classes_present_in_batch=classes_present,
        ct_mode=ct_mode, dtype=args.dtype, device=device_name(device),
        torch=torch.__version__, threads=torch.get_num_threads(),
        steps=args.steps, warmup=args.warmup, order='A B B A A B ...')


def model_entry(walls, cpus, losses, infer, memory, device):
    """One model's figures: step times (ms), inference cost, last loss and,
    when measured, memory (bytes)."""
    entry = dict(
        step_ms_median=median_ms(walls),
        step_ms_all=[round(t * 1e3, 2) for t in walls],
        inference_flops=infer['flops'],
        inference_params=infer['params'],
        params_total=infer['params_total'])
    if device.type == 'cpu':
        entry['step_cpu_ms_median'] = median_ms(cpus)
        entry['step_cpu_ms_all'] = [round(t * 1e3, 2) for t in cpus]
    if losses:
        entry['loss_last'] = losses[-1]
    entry.update(memory)
    return entry


def benchmark(args):
    """Run the comparison, print it and write ``args.out`` (JSON).

    Args:
        args (Namespace): ``tools/benchmark_ct.py``'s arguments (config,
            cfg_options, img_size, batch_size, classes_per_image, ct_mode,
            dtype, steps, warmup, device, seed, no_memory, profile, out,
            and optionally ct_options and against).

    Returns:
        dict: the result written to JSON.
    """
    device = pick_device(args.device)
    amp_dtype = DTYPES[args.dtype]
    cfg = load_config(args.config, args.cfg_options)
    ct_options = getattr(args, 'ct_options', None) or {}
    against = getattr(args, 'against', 'baseline')
    models = dict(zip(NAMES, build_pair(cfg, device, args.seed,
                                        args.ct_mode, ct_options, against)))
    num_classes = decode_classes(cfg)
    inputs, samples = make_batch(args.batch_size, args.img_size, num_classes,
                                 device, args.seed, args.classes_per_image)
    present = torch.unique(torch.cat([s.gt_sem_seg.data.flatten().cpu()
                                      for s in samples]))
    steps = {name: make_train_step(model, build_optimizer(cfg, model), inputs,
                                   samples, amp_dtype, device)
             for name, model in models.items()}
    result = run_header(args, num_classes, int(present.numel()),
                        ct_head_of(models['ct']).loss_decode.mode, device)
    # 'baseline' names the reference role: CT at the config's settings
    # when against == 'ct'
    result.update(reference=against, ct_options=ct_options)

    # inference first, on fresh weights: identical by construction
    infer, logits = {}, {}
    for name, model in models.items():
        infer[name], logits[name] = inference_cost(model, inputs[:1])
    walls, cpus, losses = interleaved_times(steps, NAMES, args.steps,
                                            args.warmup, device)
    memory = {} if args.no_memory else step_memory(models, steps, device)
    for name in NAMES:
        result[name] = model_entry(walls[name], cpus[name], losses[name],
                                   infer[name], memory.get(name, {}), device)
    result['ratios'] = step_ratios(result['baseline'], result['ct'], walls,
                                   cpus, device.type)
    result['inference_logits_identical'] = bool(
        torch.equal(logits['baseline'], logits['ct']))
    if args.profile:
        result['ct_head_profile'] = profile_ct_head(
            models['ct'], inputs, samples, amp_dtype, device)
    print_result(result)
    write_json(result, args.out)
    return result
