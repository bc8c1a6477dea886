"""Training curves of a CT run with MMSeg's own ``analyze_logs.py``.

MMSeg ships ``tools/analysis_tools/analyze_logs.py`` (inside the installed
package, ``<mmseg>/.mim/tools/analysis_tools/``). It reads MMEngine's JSON
scalar log (``<work_dir>/<timestamp>/vis_data/scalars.json``, or the
identical ``<timestamp>.json`` beside it) and plots any key, including the CT
losses (``aux_1.loss_ct_s0`` ...), the CT statistics with a ``/`` in their
name (``ct_s0/cos_pos`` ...) and the validation ``mIoU`` from the same file.
``tools/plot_ct_curves.py`` runs that script unchanged and adds only what it
lacks:

1. **Unknown keys.** ``analyze_logs.py`` silently draws an empty figure for a
   key that is not in the log - easy to hit with CT, whose losses are
   ``aux.loss_ct_s*`` when CT is the only auxiliary head and
   ``aux_1.loss_ct_s*`` next to another one. Here an unknown key is an error
   that lists the CT keys the log does have (:func:`expand_keys`).
2. **Patterns.** A key may be a shell-style pattern (``'aux_1.loss_ct_s*'``,
   ``'ct_s*/cos_pos'``), expanded against the keys of the logs in sorted
   order, so one argument plots every stage.
"""
import fnmatch
import importlib.util
import json
import os.path as osp

from ..mmseg_tools import mmseg_tool


def analyze_logs_path() -> str:
    """Path of MMSeg's bundled ``analyze_logs.py``; mmseg is not imported.

    Raises:
        MMSegToolNotFound: mmseg is not installed, or has no such script.
    """
    return mmseg_tool(osp.join('analysis_tools', 'analyze_logs.py'),
                      what="MMSeg's analyze_logs.py")


def load_analyze_logs(path=None):
    """Import MMSeg's ``analyze_logs.py`` (at ``path``, default
    :func:`analyze_logs_path`) as a module."""
    spec = importlib.util.spec_from_file_location(
        'mmseg_analyze_logs', path or analyze_logs_path())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log_keys(json_logs):
    """Every key that occurs in the JSON logs (``step`` etc. included)."""
    keys = set()
    for path in json_logs:
        with open(path) as f:
            for line in f:
                if line.strip():
                    keys.update(json.loads(line))
    return keys


def expand_keys(patterns, available):
    """Expand shell-style patterns; fail on a key or pattern with no match.

    Returns:
        list[str]: the keys, in the order of the patterns, each pattern's
        matches sorted.

    Raises:
        ValueError: a pattern matches no key; the message lists the CT keys
        and the other keys of the log.
    """
    keys = []
    for pattern in patterns:
        found = sorted(k for k in available if fnmatch.fnmatchcase(k, pattern))
        if not found:
            ct = sorted(k for k in available
                        if 'loss_ct' in k or k.startswith('ct_s'))
            hint = ', '.join(ct[:40]) if ct else 'none (not a CT run?)'
            raise ValueError(
                f'key {pattern!r} is not in the log. CT keys in it: {hint}. '
                f'Other keys: {", ".join(sorted(set(available) - set(ct)))}')
        keys += [k for k in found if k not in keys]
    return keys


def plot_curves(module, args):
    """The body of ``analyze_logs.main()`` for the parsed ``args`` of its
    own parser (keys already expanded): an Agg backend when writing a file,
    then ``plot_curve``."""
    if args.backend is None and args.out is not None:
        args.backend = 'Agg'  # no display needed to write a file
    for json_log in args.json_logs:
        assert json_log.endswith('.json'), f'{json_log}: not a .json log'
    module.plot_curve(module.load_json_logs(args.json_logs), args)
