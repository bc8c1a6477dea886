"""Mixed precision: CT trains in bf16 / fp16 without NaN or inf (CPU).

What runs here, on the CPU:

* a tiny Swin + UPerNet + CT model, a few training steps under
  ``torch.autocast('cpu', bfloat16)`` and under ``torch.autocast('cpu',
  float16)`` with ``torch.amp.GradScaler('cpu')`` (dynamic loss scaling);
* MMEngine's ``AmpOptimWrapper`` in bf16 through ``model.train_step`` (the
  path MMEngine's runner takes). In mmengine 0.10.7 its constructor asserts
  that a GPU/NPU/MLU/MUSA is present, so the test bypasses exactly that
  assertion; everything else (its autocast context, loss scaler, step) runs.
* the CT head on fp16 features of magnitude 6e4 (near fp16's 65504 limit):
  the projection, similarities and losses run in fp32.

What needs a GPU and is therefore not tested here: ``AmpOptimWrapper`` in
fp16 (MMEngine's CPU autocast accepts bf16 only, and its ``GradScaler`` is
``torch.cuda.amp``'s, which disables itself without CUDA), and CUDA kernels'
own fp16/bf16 numerics.
"""
import contextlib
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS

from ct_mmseg.config_injection import add_ct_to_config
from ct_mmseg.models import ContrastiveTransformerHead, PatchContrastLoss
from conftest import make_samples
from head_utils import blocky_gt, build_head, features
from e2e_utils import REPO


def _cpu_autocast_takes_fp16() -> bool:
    """torch < 2.4 refuses float16 in CPU autocast ("AutocastCPU only
    support Bfloat16"), even with enabled=False."""
    try:
        with torch.autocast('cpu', dtype=torch.float16):
            pass
    except RuntimeError:
        return False
    return True


# CPU fp16 autocast and torch.amp.GradScaler('cpu') (torch >= 2.3) are what
# the fp16 cases need; the oldest supported torch (2.1) has neither.
CPU_FP16 = _cpu_autocast_takes_fp16() and hasattr(torch.amp, 'GradScaler')
needs_cpu_fp16 = pytest.mark.skipif(
    not CPU_FP16, reason=f'torch {torch.__version__}: no float16 CPU autocast '
    'or CPU GradScaler')


def grad_scaler(enabled: bool):
    if hasattr(torch.amp, 'GradScaler'):
        return torch.amp.GradScaler('cpu', enabled=enabled)
    assert not enabled, 'CPU loss scaling needs torch.amp.GradScaler'
    return torch.cuda.amp.GradScaler(enabled=False)  # a no-op
CT_DEMO = osp.join(REPO, 'configs', 'ct', 'demo',
                   'swin-tiny_upernet_ct_potsdam-demo.py')
SIZE = 64
TINY = {
    'model.data_preprocessor.size': (SIZE, SIZE),
    'model.backbone.embed_dims': 16,
    'model.backbone.depths': [1, 1, 1, 1],
    'model.backbone.num_heads': [1, 2, 4, 8],
    'model.decode_head.in_channels': [16, 32, 64, 128],
    'model.decode_head.channels': 16,
    'model.auxiliary_head.in_channels': 64,
    'model.auxiliary_head.channels': 16,
}


def tiny_ct_model():
    cfg = Config.fromfile(CT_DEMO)
    cfg.merge_from_dict(TINY)
    add_ct_to_config(cfg)
    torch.manual_seed(0)
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).train()
    assert any(isinstance(m, ContrastiveTransformerHead)
               for m in model.modules())
    return model


def batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 3, SIZE, SIZE, generator=gen)
    return inputs, make_samples(blocky_gt(2, SIZE))


def ct_losses(losses):
    found = {k: v for k, v in losses.items() if 'loss_ct_s' in k}
    assert len(found) == 4, sorted(losses)
    return found


def assert_finite_step(model, losses):
    for name, value in losses.items():
        if 'loss' in name:
            assert torch.isfinite(value).all(), name
    for name, param in model.named_parameters():
        assert torch.isfinite(param).all(), name
        if param.grad is not None:
            assert torch.isfinite(param.grad).all(), name


def watch_dtypes(model):
    """Output dtype of the decode head's classifier (it runs under autocast)
    and of every CT projection head (they must not)."""
    seen = {'decode': set(), 'projector': set()}
    model.decode_head.conv_seg.register_forward_hook(
        lambda m, i, o: seen['decode'].add(o.dtype))
    ct_head = next(m for m in model.modules()
                   if isinstance(m, ContrastiveTransformerHead))
    # the projection heads run inside one fused autograd node
    # (ct_mmseg.core.project_tokens), not through their forward hooks:
    # watch what the head's projection step returns
    embed = ct_head._embed

    def watched_embed(*args):
        out = embed(*args)
        seen['projector'].add(out.dtype)
        return out
    ct_head._embed = watched_embed
    return seen


@pytest.mark.parametrize('dtype', [
    torch.bfloat16, pytest.param(torch.float16, marks=needs_cpu_fp16)],
    ids=['bf16', 'fp16'])
def test_autocast_training_steps_stay_finite(dtype):
    model = tiny_ct_model()
    seen = watch_dtypes(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # fp16 needs loss scaling; the scaler skips a step whose gradients hold
    # inf/NaN, so "the weights changed" below also proves finite gradients
    scaler = grad_scaler(enabled=dtype == torch.float16)
    inputs, samples = batch()
    for step in range(3):
        before = [p.detach().clone() for p in model.parameters()]
        optimizer.zero_grad()
        with torch.autocast('cpu', dtype=dtype):
            losses = model.loss(inputs, samples)
        for name, value in ct_losses(losses).items():
            assert value.dtype == torch.float32, name
        total = sum(v for k, v in losses.items() if 'loss' in k)
        scaler.scale(total).backward()
        assert_finite_step(model, losses)
        scaler.step(optimizer)
        scaler.update()
        changed = sum(not torch.equal(b, p)
                      for b, p in zip(before, model.parameters()))
        assert changed == len(before), f'step {step}: a skipped update'
    # autocast was really on for the model, and off for CT's projections
    assert seen['decode'] == {dtype}
    assert seen['projector'] == {torch.float32}
    assert sum(ct_losses(losses).values()).item() > 0


def test_amp_optim_wrapper_bf16_train_step(monkeypatch):
    """MMEngine's AMP path (``optim_context`` autocast + loss scaler)."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper as amp
    from mmengine.optim import AmpOptimWrapper
    if torch.cuda.is_available():
        pytest.skip('a CPU check: with a GPU, AmpOptimWrapper runs natively')
    model = tiny_ct_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # mmengine 0.10.7 refuses the CPU up front ...
    with pytest.raises(AssertionError, match='only available training'):
        AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16')
    # ... so bypass exactly that guard; its GradScaler (torch.cuda.amp) then
    # disables itself, which is right for bf16 (no loss scaling needed)
    monkeypatch.setattr(amp, 'is_cuda_available', lambda: True)
    with pytest.warns(UserWarning, match='CUDA is not available'):
        wrapper = AmpOptimWrapper(optimizer=optimizer, dtype='bfloat16')
    seen = watch_dtypes(model)
    gen = torch.Generator().manual_seed(0)
    gt = blocky_gt(2, SIZE)
    data = dict(
        inputs=[torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8,
                              generator=gen) for _ in range(2)],
        data_samples=make_samples(gt))
    for sample in data['data_samples']:
        sample.set_metainfo(dict(img_shape=(SIZE, SIZE),
                                 ori_shape=(SIZE, SIZE)))
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        log_vars = model.train_step(copy.deepcopy(data), wrapper)
    assert seen['decode'] == {torch.bfloat16}
    assert seen['projector'] == {torch.float32}
    ct = {k: v for k, v in log_vars.items() if 'loss_ct_s' in k}
    assert len(ct) == 4
    assert all(torch.isfinite(v) for v in log_vars.values())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(not torch.equal(b, p)
               for b, p in zip(before, model.parameters()))
    # the plain OptimWrapper is what the demo configs use: no autocast there
    assert not isinstance(OptimWrapper(optimizer=optimizer), AmpOptimWrapper)


@pytest.mark.parametrize('autocast', [
    False, pytest.param(True, marks=needs_cpu_fp16)],
    ids=['plain', 'autocast'])
def test_fp16_features_near_the_fp16_limit_give_fp32_losses(autocast):
    """The CT math runs in fp32 whatever the features' precision.

    Features of magnitude 6e4 fit in fp16 (max 65504) but their squared norms
    do not. The losses must be fp32, finite, and equal to the losses of the
    same values given as fp32 features; the embeddings that reach the loss
    must be fp32.
    """
    head = build_head(loss_decode=dict(type='PatchContrastLoss',
                                       clip_value=None))
    gt = blocky_gt(2, 64)
    raw = [f.detach() for f in features(2, 64, requires_grad=False)]
    # +-6e4 everywhere: the sign of a normal sample times 6e4
    half = [(torch.sign(f) * 6e4).half().requires_grad_() for f in raw]
    assert all(torch.isfinite(f).all() for f in half)
    reference = head.loss([f.detach().float() for f in half],
                          make_samples(gt), None)
    seen = []
    hook = PatchContrastLoss.forward
    head.loss_decode.forward = lambda *a: (
        seen.extend(t.dtype for t in (a[0], a[2])) or hook(head.loss_decode,
                                                           *a))
    head._generator = None  # the same draws as for the reference
    with torch.autocast('cpu', dtype=torch.float16) if autocast else \
            contextlib.nullcontext():
        losses = head.loss(half, make_samples(gt), None)
    assert seen and set(seen) == {torch.float32}
    for name, value in losses.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), name
        assert value.item() == pytest.approx(reference[name].item(),
                                             rel=1e-5, abs=1e-7)
    assert sum(losses.values()).item() > 0
    sum(losses.values()).backward()
    for feat in half:
        assert feat.grad.dtype == torch.float16
        assert torch.isfinite(feat.grad).all()
    for name, param in head.named_parameters():
        assert torch.isfinite(param.grad).all(), name
