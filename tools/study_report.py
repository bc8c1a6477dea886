"""CT's mechanism and the validation curves of a study's finished runs.

Thin command line over :mod:`ct_mmseg.study.report`. For a study file (the
one ``tools/run_study.py`` ran) it writes into the study's output folder:

* ``mechanism.csv``: per run, the training means of ``ct/over_clip`` and
  ``ct/grad_share`` (and the gradient norms) from its log, and per stage the
  mean intra- and inter-class cosine of the backbone's pure-patch tokens on
  ``--num-images`` images of the ``--split`` split (default: the test split),
  computed with ``ct_mmseg.visualisation``'s functions on the run's final
  checkpoint;
* ``mechanism.md``: the same, mean ± sample std over seeds per arm;
* ``val_curves.png``: validation mIoU during training, per arm.

Example::

    python tools/study_report.py studies/dubai_matched.yaml --num-images 24
"""
import os.path as osp
import sys

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(HERE))  # run from a checkout

from ct_mmseg.study.report_cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
