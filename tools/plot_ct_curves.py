"""Training curves of a CT run with MMSeg's own ``analyze_logs.py``.

MMSeg ships ``tools/analysis_tools/analyze_logs.py`` (inside the installed
package, ``<mmseg>/.mim/tools/analysis_tools/``). It reads MMEngine's JSON
scalar log (``<work_dir>/<timestamp>/vis_data/scalars.json``, or the
identical ``<timestamp>.json`` beside it) and plots any key, including the CT
losses (``aux_1.loss_ct_s0`` ...), the CT statistics with a ``/`` in their
name (``ct_s0/cos_pos`` ...) and the validation ``mIoU`` from the same file.
It imports seaborn, which MMSeg does not declare; ``tools/setup_env.sh``
installs it, so the script also works directly. This wrapper runs that script
unchanged and adds only what it lacks:

1. **Unknown keys.** ``analyze_logs.py`` silently draws an empty figure for a
   key that is not in the log - easy to hit with CT, whose losses are
   ``aux.loss_ct_s*`` when CT is the only auxiliary head and
   ``aux_1.loss_ct_s*`` next to another one. Here an unknown key is an error
   that lists the CT keys the log does have.
2. **Patterns.** A key may be a shell-style pattern (``'aux_1.loss_ct_s*'``,
   ``'ct_s*/cos_pos'``), expanded against the keys of the logs in sorted
   order, so one argument plots every stage.

Everything else (arguments, figure, legend) is ``analyze_logs.py``'s; its
``--legend`` needs one entry per log and per key *after* expansion.

Example::

    python tools/plot_ct_curves.py work_dirs/ct/*/vis_data/scalars.json \\
        --keys 'aux_1.loss_ct_s*' --out ct_losses.png
"""
import fnmatch
import importlib.util
import json
import os.path as osp
import sys


def analyze_logs_path() -> str:
    """Path of MMSeg's bundled ``analyze_logs.py``; mmseg is not imported."""
    spec = importlib.util.find_spec('mmseg')
    if spec is None or spec.origin is None:
        raise SystemExit('mmseg is not installed in this environment')
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools',
                    'analysis_tools', 'analyze_logs.py')
    if not osp.isfile(path):
        raise SystemExit(f"MMSeg's analyze_logs.py not found at {path}")
    return path


def load_analyze_logs():
    """Import MMSeg's ``analyze_logs.py`` as a module."""
    spec = importlib.util.spec_from_file_location('mmseg_analyze_logs',
                                                  analyze_logs_path())
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
    """
    keys = []
    for pattern in patterns:
        found = sorted(k for k in available if fnmatch.fnmatchcase(k, pattern))
        if not found:
            ct = sorted(k for k in available
                        if 'loss_ct' in k or k.startswith('ct_s'))
            hint = ', '.join(ct[:40]) if ct else 'none (not a CT run?)'
            raise SystemExit(
                f'key {pattern!r} is not in the log. CT keys in it: {hint}. '
                f'Other keys: {", ".join(sorted(set(available) - set(ct)))}')
        keys += [k for k in found if k not in keys]
    return keys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    module = load_analyze_logs()
    # analyze_logs.py's own argument parser, so every option means the same
    sys.argv = [analyze_logs_path(), *argv]
    args = module.parse_args()
    missing = [p for p in args.json_logs if not osp.isfile(p)]
    if missing:
        raise SystemExit(f'no such log file: {missing}')
    args.keys = expand_keys(args.keys, log_keys(args.json_logs))
    if args.backend is None and args.out is not None:
        args.backend = 'Agg'  # no display needed to write a file
    # the body of analyze_logs.main(), with the expanded keys
    for json_log in args.json_logs:
        assert json_log.endswith('.json'), f'{json_log}: not a .json log'
    module.plot_curve(module.load_json_logs(args.json_logs), args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
