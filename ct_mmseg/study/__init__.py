"""Studies: arms x seeds, trained and tested by MMSeg's tools, then a table.

An *arm* is an MMSeg config plus optional ``--cfg-options`` (two arms may
share a config, e.g. ``ct_head.loss_decode.clip_mode`` clamp vs scale). A
*study* is a list of arms, the seeds each arm runs, and, for CT arms, the
name of the baseline arm they are compared against. It is described by a
small YAML or JSON file (see :func:`load_spec` and ``docs/studies.md``).

Every (arm, seed) run

* trains with MMSeg's ``tools/train.py`` in ``<work_root>/<arm>/seed<s>``
  (through torchrun for several GPUs), with ``randomness.seed=<s>`` and, for
  CT configs, ``ct_head.seed=<s>`` (the CT draws have their own generator;
  it follows the run's seed so that seeds differ in CT too);
* is resumable: a run whose result file exists is skipped; an unfinished
  one resumes from its last checkpoint (``--resume``), or trains again from
  scratch when it was killed before its first checkpoint;
* is tested on the **test** split (the config's ``test_dataloader``) by
  MMSeg's ``tools/test.py`` on the final checkpoint, with the per-class IoU
  written by :class:`ct_mmseg.evaluation.PerClassIoUMetric`;
* ends with one small JSON result file, ``<output>/runs/<arm>/seed<s>.json``
  (config, seed, per-class IoU, mIoU, wall times, iterations, and the
  validation metrics logged during training). The output folder holds no
  checkpoint; the work_dirs (checkpoints, logs, ``scalars.json``) stay under
  ``work_root``.

The table (:func:`summarize_study`, :func:`to_markdown`, :func:`to_csv`)
gives, per arm, the seed-averaged class IoUs and the mIoU mean and sample
std; for every arm with a baseline, the difference of mean mIoU with a 95 %
confidence interval and a p-value: a paired t-test on the seeds both arms
ran on one machine (same initial weights, data order and random stream but
for CT, so the seeds pair up), Welch's t-test when no two seeds pair up
(:func:`compare`).

This package is plain Python; mmengine is imported only to read configs and
scipy only for the statistics. ``tools/run_study.py`` is its command line
(:mod:`.cli`), ``tools/study_report.py`` that of :mod:`.report`
(:mod:`.report_cli`). One module per concern:

* :mod:`.spec`: the spec file (:class:`Arm`, :class:`Study`,
  :class:`StopRule`, :func:`load_spec`);
* :mod:`.planning`: the (arm, seed) runs from the configs (:class:`Run`,
  :func:`plan_runs`);
* :mod:`.commands`: train.py / test.py command lines (:class:`Launch`);
* :mod:`.execution`: slots, progress, timing, result files
  (:func:`run_study`);
* :mod:`.results`: the result files read back (:func:`read_results`);
* :mod:`.statistics`: mean, sample std, t-tests (:func:`compare`);
* :mod:`.table`: the table, Markdown and CSV (:func:`make_table`);
* :mod:`.pairs`: each arm beside its baseline, per seed and per class
  (:func:`pairs_markdown`);
* :mod:`.paper`: the CT paper's Table 1 numbers;
* :mod:`.report`: CT's mechanism and the validation curves of the runs;
* :mod:`.cli`, :mod:`.report_cli`: the two command lines, as functions.

Every name below is re-exported here: ``from ct_mmseg import study`` then
``study.load_spec`` etc.
"""
from .commands import (Launch, evaluate_command, evaluate_config_base,
                       evaluate_config_text, launcher_prefix, mmseg_tool,
                       train_command)
from .execution import (RESULT_FORMAT, TIMING_NAME, Progress, Slot,
                        check_result_options, code_commit, execute,
                        format_seconds, machine_info, make_slots, process_run,
                        read_timing, record_timing, run_study,
                        stop_rule_reached, timed, val_metrics, write_result)
from .paper import (PAPER, PAPER_COLUMNS, PAPER_EXCLUDED, PAPER_RUNS,
                    PAPER_TABLE1, POTSDAM_CLASSES)
from .planning import (PER_CLASS_NAME, TEST_CONFIG_NAME, TEST_DIR, Run,
                       describe_config, evaluator_changes, load_config,
                       plan_runs)
from .results import ResultError, read_results
from .spec import (ARM_KEYS, ARM_NAME, SPEC_KEYS, SPLITS, STOP_KEYS, Arm,
                   SpecError, StopRule, Study, check_keys,
                   check_output_holds_no_checkpoints, load_spec, option_keys,
                   option_text, parse_cfg_options, parse_seeds, parse_spec,
                   parse_stop)
from .statistics import (CONFIDENCE, Comparison, compare, finite_or_none,
                         mean, mean_iou, mean_std, sample_std, t_half_width)
from .table import (ArmSummary, compare_on_one_machine, csv_fields, fmt,
                    fmt_p, header_note, make_table, run_machine,
                    summarize_study, table_classes, table_lines, to_csv,
                    to_markdown)

__all__ = [
    # spec
    'ARM_KEYS', 'ARM_NAME', 'SPEC_KEYS', 'SPLITS', 'STOP_KEYS', 'Arm',
    'SpecError', 'StopRule', 'Study', 'check_keys',
    'check_output_holds_no_checkpoints', 'load_spec', 'option_keys',
    'option_text', 'parse_cfg_options', 'parse_seeds', 'parse_spec',
    'parse_stop',
    # planning
    'PER_CLASS_NAME', 'TEST_CONFIG_NAME', 'TEST_DIR', 'Run',
    'describe_config', 'evaluator_changes', 'load_config', 'plan_runs',
    # commands
    'Launch', 'evaluate_command', 'evaluate_config_base',
    'evaluate_config_text', 'launcher_prefix', 'mmseg_tool',
    'train_command',
    # execution
    'RESULT_FORMAT', 'TIMING_NAME', 'Progress', 'Slot',
    'check_result_options', 'code_commit', 'execute', 'format_seconds',
    'machine_info', 'make_slots', 'process_run', 'read_timing',
    'record_timing', 'run_study', 'stop_rule_reached', 'timed',
    'val_metrics', 'write_result',
    # results
    'ResultError', 'read_results',
    # statistics
    'CONFIDENCE', 'Comparison', 'compare', 'finite_or_none', 'mean',
    'mean_iou', 'mean_std', 'sample_std', 't_half_width',
    # table
    'ArmSummary', 'compare_on_one_machine', 'csv_fields', 'fmt', 'fmt_p',
    'header_note', 'make_table', 'run_machine', 'summarize_study',
    'table_classes', 'table_lines', 'to_csv', 'to_markdown',
    # the paper's Table 1
    'PAPER', 'PAPER_COLUMNS', 'PAPER_EXCLUDED', 'PAPER_RUNS', 'PAPER_TABLE1',
    'POTSDAM_CLASSES',
]
