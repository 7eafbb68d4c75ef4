"""The masking-ratio sweep of ``tools/benchmarks/ratio_sweep.py``: MAE
random masking vs SBM vs SBAM (AMR) at several ratios and seeds, each run
a real pre-training, evaluated by k-NN and a linear probe; aggregation and
the markdown report."""
from .aggregate import (aggregate, collect, machine, mean_spread, read_json,
                        write_json, write_results)
from .execute import (TEST_ACC, do_run, init_reference, pretrain,
                      run_logged, run_sweep)
from .knn import dataset_sizes, knn_accuracy, knn_config, seconds_per_image
from .report import (DISCUSSION_MARKER, plot_convergence, plot_ratio,
                     render_markdown, report)
from .runs import (DEFAULT_RATIOS, KNN_TOOL, LINEAR_CONFIG, METHODS,
                   PRETRAIN_CONFIG, TEST_TOOL, TRAIN_TOOL, amr_ratio_var,
                   hms, knn_cmd, linear_cmds, load_cfg, method_options,
                   pretrain_cmd, print_dry_run, run_name, schedule_options,
                   schedules, show, sweep_grid, wants_convergence)
from .timing import calibrate, print_projection, project

__all__ = [
    'PRETRAIN_CONFIG', 'LINEAR_CONFIG', 'METHODS', 'DEFAULT_RATIOS',
    'TRAIN_TOOL', 'TEST_TOOL', 'KNN_TOOL', 'amr_ratio_var', 'run_name',
    'load_cfg', 'schedule_options', 'method_options', 'wants_convergence',
    'pretrain_cmd', 'linear_cmds', 'knn_cmd', 'show', 'hms', 'sweep_grid',
    'schedules', 'print_dry_run', 'knn_config', 'knn_accuracy',
    'seconds_per_image', 'dataset_sizes', 'TEST_ACC', 'run_logged',
    'pretrain', 'do_run', 'run_sweep', 'init_reference', 'calibrate',
    'project', 'print_projection', 'mean_spread', 'aggregate', 'read_json',
    'write_json', 'collect', 'machine', 'write_results',
    'DISCUSSION_MARKER', 'render_markdown', 'plot_ratio',
    'plot_convergence', 'report'
]
