"""The training cost of SBAM masking against stock MAE, as measured by
``tools/benchmarks/benchmark_masking.py``: four MAE models sharing their
weights (stock, SBM, AMR per image, AMR per batch), timed train steps,
peak memory, the cost of the masking alone, statistics and the report;
and the cost of SBAM over any stock method, from its SBAM config
(:mod:`.methods`)."""
from .inputs import PHOTOS, make_batch, photo_tensors, random_resized_crop
from .methods import (SBAM_ONLY_KEYS, MethodBatch, build_method_models,
                      decile_spread, format_method_table, input_images,
                      measure_method, method_config, method_label,
                      method_step,
                      pipeline_batch, random_targets, shrink_model_cfg,
                      stock_model_cfg, stock_type)
from .measure import (Measurements, PeakMemory, run_rounds, synchronize,
                      timed)
from .report import (TARGET, amp_label, device_name, fmt_bytes,
                     print_report, results_json, verdict)
from .stats import (amr_statistics, cost_alone_statistics, quantiles,
                    summarize, variant_statistics)
from .variants import (AMR_VARIANTS, CONFIGS, VARIANTS, Trainer,
                       build_variant_models, cost_alone_ops,
                       variant_model_cfgs)

__all__ = [
    'PHOTOS', 'photo_tensors', 'random_resized_crop', 'make_batch',
    'VARIANTS', 'AMR_VARIANTS', 'CONFIGS', 'variant_model_cfgs',
    'build_variant_models', 'Trainer', 'cost_alone_ops', 'PeakMemory',
    'synchronize', 'timed', 'Measurements', 'run_rounds', 'quantiles',
    'variant_statistics', 'cost_alone_statistics', 'amr_statistics',
    'summarize', 'TARGET', 'fmt_bytes', 'device_name', 'amp_label',
    'verdict', 'print_report', 'results_json', 'SBAM_ONLY_KEYS',
    'stock_type', 'stock_model_cfg', 'shrink_model_cfg', 'random_targets',
    'method_config', 'build_method_models', 'input_images', 'pipeline_batch',
    'MethodBatch', 'method_step', 'decile_spread', 'measure_method',
    'method_label',
    'format_method_table'
]
