"""Training curves of a CT run with MMSeg's own ``analyze_logs.py``.

Runs MMSeg's bundled ``tools/analysis_tools/analyze_logs.py`` unchanged and
adds only an error for a key the log lacks (listing the CT keys it has) and
shell-style key patterns (``'aux_1.loss_ct_s*'``, ``'ct_s*/cos_pos'``); see
:mod:`ct_mmseg.visualisation.curves`. Everything else (arguments, figure,
legend) is ``analyze_logs.py``'s; its ``--legend`` needs one entry per log
and per key *after* expansion.

Example::

    python tools/plot_ct_curves.py work_dirs/ct/*/vis_data/scalars.json \\
        --keys 'aux_1.loss_ct_s*' --out ct_losses.png
"""
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # run from a checkout without installing

from ct_mmseg.mmseg_tools import MMSegToolNotFound  # noqa: E402
from ct_mmseg.visualisation.curves import (  # noqa: E402
    analyze_logs_path, expand_keys, load_analyze_logs, log_keys, plot_curves)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        path = analyze_logs_path()
    except MMSegToolNotFound as error:
        raise SystemExit(str(error)) from None
    module = load_analyze_logs(path)
    # analyze_logs.py's own argument parser, so every option means the same
    sys.argv = [path, *argv]
    args = module.parse_args()
    missing = [p for p in args.json_logs if not osp.isfile(p)]
    if missing:
        raise SystemExit(f'no such log file: {missing}')
    available = log_keys(args.json_logs)
    try:
        args.keys = expand_keys(args.keys, available)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    plot_curves(module, args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
