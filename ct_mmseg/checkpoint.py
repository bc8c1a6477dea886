"""Load MMEngine checkpoints on torch >= 2.6 with ``weights_only=True`` kept.

MMEngine 0.10.7 saves its message hub (``HistoryBuffer`` objects holding
numpy arrays) inside every checkpoint, and torch's safe unpickler refuses
those classes, so ``--resume``, ``tools/test.py`` and ``load_from`` fail.
Rather than switching the safety off, ct_mmseg replaces MMEngine's local-file
loader by one that runs ``torch.load(weights_only=True)`` inside
``torch.serialization.safe_globals`` with the few classes MMEngine writes.

The allow-list is scoped to that loader (not added globally with
``add_safe_globals``), because it has to include ``getattr``: numpy and
HistoryBuffer pickle some objects as attribute look-ups. The safe unpickler
still refuses to *call* anything outside the list, so this widens what can be
read, not what can be executed.
"""
import os.path as osp

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def mmengine_safe_globals() -> list:
    """The globals MMEngine 0.10.7 writes into a checkpoint's meta/message hub."""
    allowed = [HistoryBuffer, np.ndarray, np.dtype, getattr]
    try:  # numpy >= 1.25 keeps its unpickling helpers in numpy._core / core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core.multiarray import _reconstruct, scalar
    allowed += [_reconstruct, scalar]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes)
                    if name.endswith('DType')]
    return allowed


def load_from_local_weights_only(filename, map_location=None):
    """MMEngine's local loader with ``weights_only=True`` and the allow-list."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with torch.serialization.safe_globals(mmengine_safe_globals()):
        return torch.load(filename, map_location=map_location,
                          weights_only=True)


def weights_only_needs_allow_list() -> bool:
    """True on torch >= 2.6 (``weights_only=True`` by default, and the
    scoped ``safe_globals`` it needs exists). Older torch loads MMEngine's
    checkpoints with its default full unpickler, so nothing is changed."""
    return hasattr(torch.serialization, 'safe_globals') and \
        _torch_at_least(2, 6)


def _torch_at_least(major: int, minor: int) -> bool:
    version = torch.__version__.split('+')[0].split('.')
    return (int(version[0]), int(version[1])) >= (major, minor)


def register_checkpoint_loader() -> None:
    """Install :func:`load_from_local_weights_only` for plain file paths
    (torch >= 2.6 only; see :func:`weights_only_needs_allow_list`)."""
    if not weights_only_needs_allow_list():
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_weights_only, force=True)
