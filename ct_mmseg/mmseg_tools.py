"""Where MMSeg's bundled scripts are: ``<mmseg>/.mim/tools/<name>``.

MMSeg ships its ``tools/`` folder (``train.py``, ``test.py``,
``dataset_converters/potsdam.py``, ``analysis_tools/analyze_logs.py`` ...)
inside the installed package, under ``.mim/tools``. :func:`mmseg_tool` is the
one place that finds them. It locates the package through
``importlib.util.find_spec``, so finding a script does not import mmseg.
"""
import importlib.util
import os.path as osp
from typing import Optional


class MMSegToolNotFound(FileNotFoundError):
    """mmseg is not installed, or the script is not in its ``.mim/tools``."""


def mmseg_tool(name: str, what: Optional[str] = None) -> str:
    """Path of MMSeg's bundled ``tools/<name>``.

    Args:
        name (str): path below MMSeg's ``tools/``, e.g. ``'train.py'`` or
            ``'dataset_converters/potsdam.py'``.
        what (str, optional): how the not-found message names the script,
            ``'<what> not found at <path>'``; default
            ``'MMSeg tool not found: <path>'``.

    Returns:
        str: the absolute path of an existing file.

    Raises:
        MMSegToolNotFound: mmseg is not installed, or has no such file.
    """
    spec = importlib.util.find_spec('mmseg')
    if spec is None or spec.origin is None:
        raise MMSegToolNotFound('mmseg is not installed in this environment')
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise MMSegToolNotFound(f'{what} not found at {path}' if what else
                                f'MMSeg tool not found: {path}')
    return path
