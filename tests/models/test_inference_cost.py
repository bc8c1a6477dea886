"""At test time a CT model costs exactly what its baseline costs."""
import copy
import os.path as osp

import torch
from mmengine.config import Config
from mmseg.registry import MODELS

from ct_mmseg.inference_cost import inference_cost
from ct_mmseg.config_injection import add_ct_to_config
from ct_mmseg.models import ContrastiveTransformerHead
from e2e_utils import REPO

CT_DEMO = osp.join(REPO, 'configs', 'ct', 'demo',
                   'swin-tiny_upernet_ct_potsdam-demo.py')


def build_pair():
    cfg = Config.fromfile(CT_DEMO)
    baseline_cfg = copy.deepcopy(cfg.model)
    add_ct_to_config(cfg)
    torch.manual_seed(0)
    baseline = MODELS.build(baseline_cfg)
    ct_model = MODELS.build(cfg.model)
    # same weights for every shared part; the aux list differs in layout
    state = {k: v for k, v in baseline.state_dict().items()
             if not k.startswith('auxiliary_head')}
    missing, unexpected = ct_model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith('auxiliary_head')
                                  for k in missing)
    return baseline.eval(), ct_model.eval()


def test_inference_params_flops_and_outputs_equal_the_baseline():
    baseline, ct_model = build_pair()
    inputs = torch.randn(1, 3, 96, 128)
    assert any(isinstance(m, ContrastiveTransformerHead)
               for m in ct_model.modules())

    costs, outputs = zip(*(inference_cost(m, inputs)
                           for m in (baseline, ct_model)))
    flops = [c['flops'] for c in costs]
    params = [c['params'] for c in costs]
    assert flops[0] > 0 and flops[0] == flops[1]
    assert params[0] > 0 and params[0] == params[1]
    assert torch.equal(outputs[0], outputs[1])

    # the CT head's parameters exist only for training: nothing of it runs
    ct_head = next(m for m in ct_model.modules()
                   if isinstance(m, ContrastiveTransformerHead))
    calls = []
    ct_head.register_forward_pre_hook(lambda *a: calls.append(1))
    ct_head.loss = lambda *a, **k: calls.append(1)
    with torch.no_grad():
        ct_model.predict(inputs)
    assert not calls
    extra = sum(p.numel() for p in ct_model.parameters()) - sum(
        p.numel() for p in baseline.parameters())
    assert extra == sum(p.numel() for p in ct_head.parameters())
