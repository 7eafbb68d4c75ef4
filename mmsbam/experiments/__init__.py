"""Experiments: arms x ratios x seeds -> pre-train -> evaluate ->
aggregate -> report, resumable. One harness; each study
(:mod:`.studies`) is a configuration of it. Experiment code: the library
(hooks, models, tools' measures) never imports from here."""
from .aggregate import (convergence_table, mean_spread, metric_table,
                        per_seed, summarize)
from .runner import (CellRun, collect, pretrain_options, read_json,
                     run_baselines, run_cell, run_experiment, write_json)
from .spec import Arm, Cell, ExperimentSpec, amr_ratio_var, cell_name
from .study import STUDIES, Study, get_study, report

__all__ = [
    'Arm', 'Cell', 'ExperimentSpec', 'amr_ratio_var', 'cell_name',
    'CellRun', 'pretrain_options', 'run_cell', 'run_baselines',
    'run_experiment', 'collect', 'read_json', 'write_json', 'mean_spread',
    'metric_table', 'per_seed', 'convergence_table', 'summarize', 'Study', 'STUDIES',
    'get_study', 'report'
]
