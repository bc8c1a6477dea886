#!/usr/bin/env python
"""Run a study (arms x seeds) with MMSeg's tools, then print its table.

A study is a YAML or JSON file listing arms (an MMSeg config plus optional
cfg-options, and the baseline arm a CT arm is compared with) and seeds; see
``docs/studies.md`` and :func:`ct_mmseg.study.load_spec`. The logic lives in
``ct_mmseg/study/`` (a package, one module per concern).

Each unfinished (arm, seed) run trains with MMSeg's ``tools/train.py``
(resuming from its last checkpoint if it has one), is tested on the test
split with ``tools/test.py`` and leaves a result file
``<output>/runs/<arm>/seed<s>.json``. Then the table (Markdown on stdout,
and ``<output>/table.md`` / ``table.csv``) gives, per arm, the class IoUs and
the mIoU mean ± sample std over seeds, and for each arm with a baseline the
difference of mean mIoU with a 95 % CI and a p-value (paired t-test for
matched seeds, Welch's t-test otherwise).

Examples::

    python tools/run_study.py studies/potsdam_table1.yaml --dry-run
    python tools/run_study.py studies/potsdam_table1.yaml --gpus 4 --paper
    python tools/run_study.py studies/potsdam_table1.yaml --table-only --paper
    python tools/run_study.py my_study.yaml --jobs 8 \\
        --gpu-ids 0 1 2 3 4 5 6 7 --cfg-options train_cfg.max_iters=2000
"""
import sys

from ct_mmseg.study.cli import main

if __name__ == '__main__':
    sys.exit(main())
