"""Aggregation of an experiment's cells: mean ± spread over seeds per arm
and ratio, the spread of an arm across ratios, and its mean gain over a
reference arm.

* *mean ± spread over seeds*: mean, and half the range (max − min) / 2, so
  that mean ± spread spans every seed's value.
* *spread across ratios* of an arm: max − min over ratios of its seed
  means.
* *gain over the reference*: per ratio, arm mean − reference mean, and
  the same per seed (paired: same seed, same data order).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = [
    'mean_spread', 'per_seed', 'metric_table', 'convergence_table',
    'summarize'
]


def mean_spread(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and half-range over seeds (mean ± spread spans all values)."""
    vals = [float(v) for v in values]
    return dict(mean=sum(vals) / len(vals),
                spread=(max(vals) - min(vals)) / 2, n=len(vals),
                values=vals)


def _ratio_key(ratio: Optional[float]) -> str:
    return 'config' if ratio is None else f'{ratio:.2f}'


def per_seed(runs: Sequence[Dict[str, Any]], key: str
             ) -> Dict[str, Dict[str, Dict[int, Any]]]:
    """``{arm: {ratio: {seed: run[key]}}}`` over the runs that have
    ``key`` (ratio as in the tables: ``'0.75'``, or ``'config'``)."""
    out: Dict[str, Dict[str, Dict[int, Any]]] = {}
    for run in runs:
        if run.get(key) is not None:
            out.setdefault(run['arm'], {}).setdefault(
                _ratio_key(run.get('ratio')), {})[run['seed']] = run[key]
    return out


def metric_table(runs: Sequence[Dict[str, Any]], metric: str,
                 reference: Optional[str] = None
                 ) -> Optional[Dict[str, Any]]:
    """Arm x ratio table of one metric (mean ± spread over seeds), the
    spread of each arm across ratios and, with ``reference``, each arm's
    paired gain over it per ratio; None when no run has the metric."""
    cells = per_seed(runs, metric)
    if not cells:
        return None
    table = {arm: {r: mean_spread(list(by_seed.values()))
                   for r, by_seed in sorted(ratios.items())}
             for arm, ratios in cells.items()}
    across = {arm: max(c['mean'] for c in t.values())
              - min(c['mean'] for c in t.values())
              for arm, t in table.items()}
    gain: Dict[str, Dict[str, Any]] = {}
    if reference in cells:
        for arm, ratios in cells.items():
            if arm == reference:
                continue
            for r, by_seed in ratios.items():
                ref = cells[reference].get(r, {})
                seeds = sorted(set(by_seed) & set(ref))
                if seeds:
                    gain.setdefault(arm, {})[r] = mean_spread(
                        [by_seed[s] - ref[s] for s in seeds])
    return dict(table=table, spread_across_ratios=across, gain=gain)


def convergence_table(runs: Sequence[Dict[str, Any]]
                      ) -> Dict[str, Dict[str, List[Dict[str, Any]]]]:
    """Per arm and ratio, the k-NN after each epoch, mean ± spread over
    the seeds that have a curve."""
    curves: Dict[str, Dict[str, List[List[float]]]] = {}
    epochs: Dict[Tuple[str, str], List[int]] = {}
    for run in runs:
        if not run.get('convergence'):
            continue
        key = (run['arm'], _ratio_key(run.get('ratio')))
        mine = [c['epoch'] for c in run['convergence']]
        if epochs.setdefault(key, mine) != mine:
            raise ValueError(f'{run.get("cell", key)}: convergence epochs '
                             f'{mine} differ from {epochs[key]} of the '
                             'same arm and ratio')
        curves.setdefault(key[0], {}).setdefault(key[1], []).append(
            [c['knn_top1'] for c in run['convergence']])
    return {arm: {r: [dict(epoch=e, **mean_spread(col))
                      for e, col in zip(epochs[(arm, r)], zip(*lists))]
                  for r, lists in ratios.items()}
            for arm, ratios in curves.items()}


def summarize(runs: Sequence[Dict[str, Any]], metrics: Sequence[str],
              reference: Optional[str] = None) -> Dict[str, Any]:
    """Every metric's :func:`metric_table` and the convergence curves."""
    out: Dict[str, Any] = {}
    for m in metrics:
        t = metric_table(runs, m, reference)
        if t is not None:
            out[m] = t
    conv = convergence_table(runs)
    if conv:
        out['convergence'] = conv
    return out
