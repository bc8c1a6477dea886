"""CT checkpoints that a plain MMSeg model loads as they are.

A config with the CT fragment trains a model whose auxiliary heads are the
config's own plus the CT head, but predicts with the config's plain model
(MMSeg's ``tools/test.py``, ``init_model``, ``MMSegInferencer`` build
``cfg.model`` as written, without the CT head). MMEngine writes the whole
training model and its message hub into every checkpoint, so the plain model
would meet unexpected keys, and torch >= 2.6's safe unpickler would refuse
the message hub's ``HistoryBuffer`` objects unless ct_mmseg had been
imported first.

So a CT run's checkpoint (written through :class:`~ct_mmseg.hooks.
CTCheckpointHook`) holds

* ``state_dict``: exactly the plain model's parameters and buffers, under
  the plain model's names (a single auxiliary head that the fragment turned
  into ``[head, CT]`` is saved as ``auxiliary_head.*`` again);
* ``ct_mmseg``: the CT heads' own tensors and how to put them back, which a
  CT runner does on resume or ``load_from`` (:func:`to_training_state`);
* a message hub of plain Python values (lists, numbers, strings), restored
  into MMEngine's ``HistoryBuffer`` objects on resume.

Plain functions only; the hook is the MMEngine side.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

SECTION = 'ct_mmseg'  # checkpoint key of the CT part
FORMAT = 'ct_mmseg.checkpoint.v1'
LAYOUTS = ('none', 'single', 'list')
_BUFFER = '__history_buffer__'  # marks a HistoryBuffer written as a dict


def auxiliary_layout(auxiliary_head) -> str:
    """How a config's own ``model.auxiliary_head`` is laid out, before the
    CT head is added: ``'none'`` (no auxiliary head: CT becomes the only
    one), ``'single'`` (one head dict: it becomes entry 0 of ``[head, CT]``)
    or ``'list'`` (a list: CT is appended, the others keep their index)."""
    if auxiliary_head is None:
        return 'none'
    if isinstance(auxiliary_head, (list, tuple)):
        return 'list'
    return 'single'


def ct_head_prefixes(model) -> List[str]:
    """State-dict prefixes of the model's CT heads, e.g.
    ``['auxiliary_head.1.']`` or ``['auxiliary_head.']`` (CT alone)."""
    from .models import ContrastiveTransformerHead
    heads = getattr(model, 'auxiliary_head', None)
    if isinstance(heads, ContrastiveTransformerHead):
        return ['auxiliary_head.']
    if heads is None or not hasattr(heads, '__iter__'):
        return []
    return [f'auxiliary_head.{i}.' for i, head in enumerate(heads)
            if isinstance(head, ContrastiveTransformerHead)]


def _check_layout(layout: str):
    if layout not in LAYOUTS:
        raise ValueError(f'auxiliary layout must be one of {LAYOUTS}, got '
                         f'{layout!r}')


def to_plain_state(state_dict: Dict, ct_prefixes: Sequence[str],
                   layout: str) -> Tuple[OrderedDict, OrderedDict]:
    """Split a CT model's state dict into the plain model's and CT's.

    Args:
        state_dict (dict): the training model's ``{name: tensor}``.
        ct_prefixes (Sequence[str]): :func:`ct_head_prefixes` of the model.
        layout (str): :func:`auxiliary_layout` of the config without CT.

    Returns:
        tuple[OrderedDict, OrderedDict]: the plain model's state dict (names
        as the config without CT gives them) and the CT heads' tensors
        (names unchanged).
    """
    _check_layout(layout)
    plain, ct = OrderedDict(), OrderedDict()
    for name, value in state_dict.items():
        if any(name.startswith(p) for p in ct_prefixes):
            ct[name] = value
        elif layout == 'single' and name.startswith('auxiliary_head.0.'):
            plain['auxiliary_head.' + name[len('auxiliary_head.0.'):]] = value
        else:
            plain[name] = value
    return plain, ct


def to_training_state(plain: Dict, ct: Dict, layout: str) -> OrderedDict:
    """Inverse of :func:`to_plain_state`: the CT model's state dict."""
    _check_layout(layout)
    state = OrderedDict()
    for name, value in plain.items():
        if layout == 'single' and name.startswith('auxiliary_head.'):
            name = 'auxiliary_head.0.' + name[len('auxiliary_head.'):]
        state[name] = value
    state.update(ct)
    return state


def plain_message_hub(hub_state: Dict) -> Dict:
    """MMEngine's message-hub state with every ``HistoryBuffer`` written as
    a dict of lists, so that torch's safe unpickler reads it with no
    allow-list; numpy scalars become Python numbers."""
    from mmengine.logging import HistoryBuffer

    def plain(value):
        if isinstance(value, HistoryBuffer):
            logs, counts = value.data
            return {_BUFFER: True, 'log_history': logs.tolist(),
                    'count_history': counts.tolist(),
                    'max_length': int(value.max_length)}
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            return type(value)((k, plain(v)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return type(value)(plain(v) for v in value)
        return value

    return plain(hub_state)


def restore_message_hub(hub_state: Dict) -> Dict:
    """Inverse of :func:`plain_message_hub` for what MMEngine reads back:
    the marked dicts become ``HistoryBuffer`` objects again."""
    from mmengine.logging import HistoryBuffer

    def restore(value):
        if isinstance(value, dict) and value.get(_BUFFER):
            return HistoryBuffer(value['log_history'],
                                 value['count_history'],
                                 value['max_length'])
        if isinstance(value, dict):
            return type(value)((k, restore(v)) for k, v in value.items())
        return value

    return restore(hub_state)


def write_plain(checkpoint: Dict, model, layout: str) -> Dict:
    """Turn MMEngine's checkpoint dict of a CT model into the format above,
    in place (what :class:`~ct_mmseg.hooks.CTCheckpointHook` does before a
    save). Returns it."""
    prefixes = ct_head_prefixes(model)
    plain, ct = to_plain_state(checkpoint['state_dict'], prefixes, layout)
    checkpoint['state_dict'] = plain
    checkpoint[SECTION] = dict(format=FORMAT, layout=layout,
                               state_dict=ct)
    if 'message_hub' in checkpoint:
        checkpoint['message_hub'] = plain_message_hub(
            checkpoint['message_hub'])
    return checkpoint


def read_plain(checkpoint: Dict, model,
               layout: Optional[str] = None) -> Dict:
    """Undo :func:`write_plain` for ``model``, in place (before MMEngine
    loads the checkpoint into it). Returns it.

    * ``model`` has CT heads (a CT runner resuming or loading): the CT
      tensors go back and the auxiliary names get CT's layout.
    * ``model`` has none (``tools/test.py`` on a CT config builds the plain
      model): the state dict is already the plain model's; the CT part is
      dropped.

    Without the CT section, given ``layout``: a full training state dict
    (CT keys inline, MMEngine's own format) is split for a plain model; a
    plain one (e.g. the baseline's) gets CT's names for a CT model, whose
    CT heads then start from their initialisation.
    """
    section = checkpoint.pop(SECTION, None)
    if 'message_hub' in checkpoint:
        checkpoint['message_hub'] = restore_message_hub(
            checkpoint['message_hub'])
    prefixes = ct_head_prefixes(model)
    state = checkpoint.get('state_dict')
    if state is None:
        return checkpoint
    if section is not None:
        if prefixes:
            checkpoint['state_dict'] = to_training_state(
                state, section['state_dict'], section['layout'])
        return checkpoint
    if layout is None:
        return checkpoint
    if not prefixes and any(map(_is_ct_key, state)):
        checkpoint['state_dict'] = _drop_ct_keys(state, layout)
    elif prefixes and not any(map(_is_ct_key, state)):
        # a plain (e.g. baseline) checkpoint into the CT model
        checkpoint['state_dict'] = to_training_state(state, {}, layout)
    return checkpoint


def _is_ct_key(name: str) -> bool:
    """A CT head's tensor: an auxiliary head's ``projectors``."""
    return name.startswith('auxiliary_head.') and '.projectors.' in name


def _drop_ct_keys(state: Dict, layout: str) -> OrderedDict:
    """A full training state dict (CT keys inline) as the plain model's."""
    if layout == 'none':
        prefixes = ['auxiliary_head.']
    else:
        prefixes = sorted({'.'.join(k.split('.')[:2]) + '.'
                           for k in state if _is_ct_key(k)})
    return to_plain_state(state, prefixes, layout)[0]
