"""Results: the finished runs' result files read back, checked, as
``{arm: {seed: result}}`` (ordered as the spec; ``result`` is the dict
:func:`~ct_mmseg.study.execution.write_result` wrote)."""
import json
import os.path as osp
from collections import OrderedDict
from typing import Any, Callable, Dict

from .spec import Study


class ResultError(RuntimeError):
    """A run's outputs or result file are missing something."""


def read_results(study: Study, warn: Callable[[str], Any] = print
                 ) -> Dict[str, Dict[int, dict]]:
    """``{arm: {seed: result}}`` of the finished runs, in spec order; a
    missing run is left out with a warning."""
    results = OrderedDict()
    for arm in study.arms:
        results[arm.name] = OrderedDict()
        for seed in arm.seeds:
            path = study.result_file(arm.name, seed)
            if not osp.isfile(path):
                warn(f'warning: {arm.name} seed {seed}: no result '
                     f'({path}), left out')
                continue
            with open(path) as f:
                result = json.load(f)
            for key in ('iou', 'classes', 'seed', 'arm'):
                if key not in result:
                    raise ResultError(f'{path}: no {key!r}; not a study '
                                      'result file')
            if (result['arm'], result['seed']) != (arm.name, seed):
                raise ResultError(f'{path}: holds arm {result["arm"]!r} '
                                  f'seed {result["seed"]}, expected '
                                  f'{arm.name!r} seed {seed}')
            results[arm.name][seed] = result
    return results
