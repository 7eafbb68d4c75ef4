"""Aggregation of the sweep's runs: mean ± spread over seeds, spread across
ratios, mean gain over MAE, convergence curves; the results files.

* *mean ± spread over seeds*: mean, and half the range (max − min) / 2, so
  that mean ± spread spans every seed's value.
* *spread across ratios* of a method: max − min over ratios of its
  seed-mean accuracy.
* *mean gain over MAE*: mean over the ratios both methods ran of
  (method's seed-mean − MAE's seed-mean), in points.
"""
import argparse
import glob
import json
import os
import os.path as osp
import platform
from typing import Any, Dict, List, Optional, Sequence

__all__ = [
    'mean_spread', 'aggregate', 'read_json', 'write_json', 'collect',
    'machine', 'write_results'
]


def mean_spread(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and half-range over seeds (mean ± spread spans all values)."""
    vals = [float(v) for v in values]
    return dict(mean=sum(vals) / len(vals),
                spread=(max(vals) - min(vals)) / 2, n=len(vals),
                values=vals)


def _metric_summary(runs: Sequence[Dict[str, Any]],
                    metric: str) -> Optional[Dict[str, Any]]:
    """Table method x ratio, spread across ratios and mean gain over MAE
    of one metric; None when no run has it."""
    table: Dict[str, Dict[str, Any]] = {}
    for run in runs:
        if run.get(metric) is None:
            continue
        cell = table.setdefault(run['method'], {}).setdefault(
            f"{run['ratio']:.2f}", [])
        cell.append(run[metric])
    if not table:
        return None
    table = {m: {r: mean_spread(v) for r, v in sorted(cells.items())}
             for m, cells in table.items()}
    across = {m: max(c['mean'] for c in cells.values())
              - min(c['mean'] for c in cells.values())
              for m, cells in table.items()}
    gain = {}
    for m, cells in table.items():
        if m == 'mae' or 'mae' not in table:
            continue
        common = sorted(set(cells) & set(table['mae']))
        if common:
            gain[m] = sum(cells[r]['mean'] - table['mae'][r]['mean']
                          for r in common) / len(common)
    return dict(table=table, spread_across_ratios=across,
                mean_gain_over_mae=gain)


def _convergence(runs: Sequence[Dict[str, Any]],
                 init_reference: Optional[Dict[str, float]]
                 ) -> Dict[str, Dict[str, Any]]:
    """k-NN after each epoch per ``method@ratio``, mean ± spread; the
    initial weights' k-NN of a run's seed is its epoch 0."""
    curves: Dict[str, Dict[str, List[float]]] = {}
    for run in runs:
        if not run.get('convergence'):
            continue
        curve = curves.setdefault(f"{run['method']}@{run['ratio']:.2f}", {})
        init = (init_reference or {}).get(str(run['seed']))
        if init is not None:
            curve.setdefault('0', []).append(init)
        for point in run['convergence']:
            curve.setdefault(str(point['epoch']), []).append(
                point['knn_top1'])
    return {
        key: {e: mean_spread(v) for e, v in sorted(pts.items(),
                                                   key=lambda x: int(x[0]))}
        for key, pts in curves.items()}


def aggregate(runs: Sequence[Dict[str, Any]],
              init_reference: Optional[Dict[str, float]] = None
              ) -> Dict[str, Any]:
    """Table, spread across ratios, and mean gain over MAE per metric.

    Args:
        runs (Sequence[dict]): ``result.json`` of each run (``method``,
            ``ratio``, ``seed``, ``knn_top1``, ``linear_top1``,
            ``convergence``).
        init_reference (dict, optional): k-NN of the initial weights per
            seed (``str(seed)``); it becomes epoch 0 of every convergence
            curve whose seeds it covers: the same weights every method
            starts from.

    Returns:
        dict: ``knn_top1`` and ``linear_top1`` (where some run has them),
        each with ``table``, ``spread_across_ratios`` and
        ``mean_gain_over_mae``; and ``convergence``.
    """
    summary: Dict[str, Any] = {}
    for metric in ('knn_top1', 'linear_top1'):
        metric_summary = _metric_summary(runs, metric)
        if metric_summary is not None:
            summary[metric] = metric_summary
    summary['convergence'] = _convergence(runs, init_reference)
    return summary


def read_json(path: str) -> Optional[Dict[str, Any]]:
    """The JSON file at ``path``, or None if there is none."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data: Any) -> None:
    """Write ``data`` to ``path`` atomically (through ``path.tmp``)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def collect(work_dir: str) -> List[Dict[str, Any]]:
    """Every ``work_dir/*/result.json``, in the order of their paths."""
    return [read_json(path) for path in sorted(
        glob.glob(osp.join(work_dir, '*', 'result.json')))]


def machine() -> Dict[str, Any]:
    """Platform, Python, CPUs, torch and its threads, the GPU if any."""
    info = dict(platform=platform.platform(), python=platform.python_version(),
                cpus=os.cpu_count(), processor=platform.processor())
    try:
        import torch
        info.update(torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    cuda=torch.cuda.get_device_name(0)
                    if torch.cuda.is_available() else None)
    except ImportError:
        pass
    return info


def write_results(args: argparse.Namespace, runs: List[Dict[str, Any]],
                  extra: Optional[Dict[str, Any]] = None) -> str:
    """Update ``args.work_dir/results.json``: ``runs``, ``extra`` (e.g.
    ``meta``, ``init_reference``) over what it held, and the summary.

    Returns:
        str: The path of ``results.json``.
    """
    path = osp.join(args.work_dir, 'results.json')
    old = read_json(path) or {}
    data = dict(old, runs=runs)
    data.update(extra or {})
    data['summary'] = aggregate(runs, data.get('init_reference'))
    write_json(path, data)
    return path
