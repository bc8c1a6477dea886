"""Timing a training step: the device, autocast, the step itself, and the
interleaved A B B A schedule that cancels drift between two models.

After warm-up the two models alternate step by step, A B B A A B ... (each
pair swaps the order, so neither model always runs first). Interleaving in
one process cancels drift (clock boosts, other jobs on the machine). On the
CPU the process CPU time is recorded next to the wall time: on a shared
machine it is the steadier of the two.
"""
import contextlib
import os
import platform
import statistics
import time

import torch


def pick_device(name=None):
    """``torch.device(name)``; default: cuda when available, else cpu."""
    return torch.device(name or (
        'cuda' if torch.cuda.is_available() else 'cpu'))


def device_name(device):
    """The GPU's name, or ``'cpu (<processor>, <n> cores)'``."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'cpu ({platform.processor() or platform.machine()}, ' \
           f'{os.cpu_count()} cores)'


def synchronize(device):
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def autocast(device, amp_dtype):
    """autocast to ``amp_dtype``, or no context at all for fp32: torch 2.1
    refuses ``torch.autocast('cpu', dtype=torch.float32)`` even when it is
    disabled."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def make_train_step(model, optimizer, inputs, samples, amp_dtype, device):
    """``step()``: zero_grad, forward (autocast), backward, optimizer step
    (with a grad scaler for fp16); returns the loss. ``step.optimizer`` is
    the optimizer."""
    scaler = None
    if amp_dtype == torch.float16:
        # torch.amp.GradScaler is torch >= 2.3; older torch has the CUDA one
        scaler = torch.amp.GradScaler(device.type) if hasattr(
            torch.amp, 'GradScaler') else torch.cuda.amp.GradScaler()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp_dtype):
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


def timed(fn, device):
    """(wall seconds, process CPU seconds) of ``fn()``."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def median_ms(values):
    """Median of seconds, in ms rounded to 0.01; None for no values."""
    return round(statistics.median(values) * 1e3, 2) if values else None


def interleaved_times(steps, names, rounds, warmup, device):
    """Warm up, then time ``rounds`` rounds of the steps, A B B A A B ...

    Args:
        steps (dict): ``{name: step()}`` returning the loss.
        names (tuple): the two names, A first.
        rounds (int): timed steps per model.
        warmup (int): untimed steps per model first.

    Returns:
        tuple[dict, dict, dict]: per name, the wall times, the CPU times
        (seconds) and the losses of the timed steps.
    """
    for _ in range(warmup):
        for name in names:
            steps[name]()
    walls = {n: [] for n in names}
    cpus = {n: [] for n in names}
    losses = {n: [] for n in names}
    for i in range(rounds):
        for name in (names if i % 2 == 0 else names[::-1]):
            wall, cpu = timed(lambda: losses[name].append(
                float(steps[name]().detach())), device)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return walls, cpus, losses


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
