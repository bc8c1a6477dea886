"""The two models the benchmark compares, built from one MMSeg config.

* **baseline**: the config's own ``model`` (the CT injection skipped), and
* **CT**: the same config after
  :func:`ct_mmseg.config_injection.add_ct_to_config` (a baseline config gets
  the CT fragment's ``ct_head`` first),

with identical weights for every shared module: the CT model gets the
baseline's state dict (:func:`shared_state`); only the CT head's
projections are its own.
"""
import copy
import inspect

import torch

from ..configs import fragment_path


def load_config(path, options):
    """The MMEngine ``Config`` at ``path`` with ``options`` (dict) merged."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def model_configs(cfg, ct_mode=None, ct_options=None):
    """(baseline model config, CT model config) of one MMSeg config.

    ``ct_mode`` ('cl' or 'infonce') overrides ``ct_head.loss_decode.mode``;
    ``ct_options`` (dict) sets other keys of ``ct_head`` (e.g.
    ``{'memory_size': 512}``).
    """
    from mmengine.config import Config

    from ..config_injection import _is_ct_head, add_ct_to_config
    from ..models import ContrastiveTransformerHead
    baseline = copy.deepcopy(cfg.model)
    aux = baseline.get('auxiliary_head')
    if isinstance(aux, (list, tuple)) and any(_is_ct_head(h) for h in aux):
        raise ValueError('the config already has a CT head in model; give '
                         'a config that gets CT from the fragment (ct_head)')
    ct_cfg = copy.deepcopy(cfg)
    if ct_cfg.get('ct_head') is None:  # a baseline config: use the fragment
        fragment = Config.fromfile(fragment_path())
        ct_cfg.ct_head = copy.deepcopy(fragment.ct_head)
    if ct_mode is not None:
        loss = ct_cfg.ct_head.setdefault('loss_decode', {})
        loss['mode'] = ct_mode
        if ct_mode != 'cl':  # a CL-only option of reproduction configs
            loss.pop('pair_selection', None)
    for key, value in (ct_options or {}).items():
        if key not in inspect.signature(
                ContrastiveTransformerHead.__init__).parameters:
            raise ValueError(f'--ct-options: {key!r} is not an option of '
                             'ContrastiveTransformerHead')
        ct_cfg.ct_head[key] = value
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


def build_pair(cfg, device, seed, ct_mode=None, ct_options=None,
               against='baseline'):
    """[reference, CT model] of ``cfg`` in train mode on ``device``, the CT
    model loaded with the reference's weights (SyncBN turned into BN: one
    process, no process group, as MMEngine does).

    The reference is the baseline (``against='baseline'``) or CT at the
    config's own head settings (``against='ct'``: what ``ct_options``
    cost on top of CT)."""
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS

    from ..models import ContrastiveTransformerHead
    if against not in ('baseline', 'ct'):
        raise ValueError(f"against must be 'baseline' or 'ct', not "
                         f'{against!r}')
    base_cfg, ct_cfg = model_configs(cfg, ct_mode, ct_options)
    if against == 'ct':
        base_cfg = model_configs(cfg, ct_mode)[1]
    torch.manual_seed(seed)
    baseline = MODELS.build(base_cfg)
    ct_model = MODELS.build(ct_cfg)
    state = shared_state(baseline, ct_model)
    missing, unexpected = ct_model.load_state_dict(state, strict=False)
    ct_params = {f'{name}.{key}' for name, m in ct_model.named_modules()
                 if isinstance(m, ContrastiveTransformerHead)
                 for key in m.state_dict()}
    assert not unexpected and set(missing) <= ct_params, (missing, unexpected)
    return [revert_sync_batchnorm(m).to(device).train()
            for m in (baseline, ct_model)]


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


def decode_classes(cfg):
    """K: ``num_classes`` of the (last) decode head."""
    decode = cfg.model.decode_head
    if isinstance(decode, (list, tuple)):
        decode = decode[-1]
    return int(decode.num_classes)


def ct_head_of(model):
    """The model's first ``ContrastiveTransformerHead``."""
    from ..models import ContrastiveTransformerHead
    return next(m for m in model.modules()
                if isinstance(m, ContrastiveTransformerHead))


def ct_head_config(cfg):
    """The CT head's config dict in the CT model of ``cfg`` (a copy)."""
    _, ct_cfg = model_configs(cfg)
    aux = ct_cfg.auxiliary_head
    return copy.deepcopy(next(
        h for h in (aux if isinstance(aux, (list, tuple)) else [aux])
        if 'ContrastiveTransformerHead' in h['type']))
