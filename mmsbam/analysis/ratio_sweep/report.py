"""The sweep's report: a markdown table method x ratio per metric, the
convergence table, and two plots (accuracy vs ratio, k-NN vs epoch)."""
import argparse
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from .aggregate import collect, mean_spread, read_json, write_results
from .runs import METHODS, hms

__all__ = [
    'DISCUSSION_MARKER', 'render_markdown', 'plot_ratio', 'plot_convergence',
    'report'
]

#: ``report`` keeps everything from this line on in an existing report
DISCUSSION_MARKER = '<!-- discussion: kept by --report -->'
_METRIC_NAMES = {'knn_top1': 'k-NN top-1 (%)',
                 'linear_top1': 'linear probe top-1 (%)'}


def _order(methods: Sequence[str]) -> List[str]:
    return [m for m in METHODS if m in methods]


def _header_lines(data: Dict[str, Any]) -> List[str]:
    """Title, command, machine, wall time, the runs and the definitions."""
    lines = ['# Masking-ratio sweep: MAE vs SBM vs SBAM', '']
    meta = data.get('meta', {})
    if meta.get('command'):
        lines += ['Command:', '', '```bash', meta['command'], '```', '']
    if meta.get('machine'):
        lines += ['Machine: ' + ', '.join(
            f'{k} {v}' for k, v in meta['machine'].items() if v), '']
    if meta.get('wall_s') is not None:
        lines += [f"Wall time of the sweep: {hms(meta['wall_s'])}.", '']
    runs = data.get('runs', [])
    if runs:
        r0 = runs[0]
        seeds = sorted({r['seed'] for r in runs})
        lines += [f"{len(runs)} runs; {r0['epochs']} pre-training epochs, "
                  f"linear probe {r0['linear_epochs']} epochs, seeds "
                  f"{seeds}; config `{r0['config']}`. AMR ratio_var per "
                  'ratio: ' + ', '.join(sorted({
                      f"{r['ratio']:.2f}: {r['ratio_var']}" for r in runs
                      if r.get('ratio_var') is not None})) + '.', '']
    lines += ['Cells: mean ± spread over seeds, spread = (max − min) / 2, '
              'top-1 % on the test split. Spread across ratios: max − min '
              'of the seed means over ratios. Mean gain: mean over ratios '
              'of (method − MAE).', '']
    ref = data.get('init_reference')
    if ref:
        ms = mean_spread(list(ref.values()))
        lines += [f"Reference: k-NN top-1 of the initial weights (no "
                  f"pre-training, seeds {sorted(ref)}): {ms['mean']:.2f} ± "
                  f"{ms['spread']:.2f} %.", '']
    return lines


def _metric_lines(name: str, s: Dict[str, Any]) -> List[str]:
    """The table method x ratio of one metric's summary."""
    ratios = sorted({r for cells in s['table'].values() for r in cells})
    lines = [f'## {name}', '',
             '| method | ' + ' | '.join(ratios)
             + ' | spread across ratios | mean gain over MAE |',
             '|---' * (len(ratios) + 3) + '|']
    for m in _order(s['table']):
        cells = s['table'][m]
        row = [f"{cells[r]['mean']:.2f} ± {cells[r]['spread']:.2f}"
               if r in cells else '–' for r in ratios]
        gain = s['mean_gain_over_mae'].get(m)
        lines.append(
            f'| {METHODS[m]} | ' + ' | '.join(row)
            + f" | {s['spread_across_ratios'][m]:.2f} | "
            + ('–' if gain is None else f'{gain:+.2f}') + ' |')
    return lines + ['']


def _convergence_lines(curves: Dict[str, Dict[str, Any]]) -> List[str]:
    """The table of k-NN after each epoch, one row per ``method@ratio``."""
    epochs = next(iter(curves.values()))
    lines = ['## Convergence (k-NN top-1 % after each epoch)', '',
             '| run | ' + ' | '.join(f'epoch {e}' for e in epochs) + ' |',
             '|---' * (1 + len(epochs)) + '|']
    for key, pts in curves.items():
        m, r = key.split('@')
        lines.append(f'| {METHODS[m]} at {r} | ' + ' | '.join(
            f"{p['mean']:.2f} ± {p['spread']:.2f}" for p in pts.values())
            + ' |')
    return lines + ['']


def render_markdown(data: Dict[str, Any]) -> str:
    """The report: table method x ratio per metric, spreads, gains.

    Args:
        data (dict): ``results.json``: ``summary`` (see
            :func:`aggregate`), and optionally ``meta``, ``runs``,
            ``init_reference`` and ``plots`` (paths relative to the report).

    Returns:
        str: Markdown.
    """
    summary = data['summary']
    lines = _header_lines(data)
    for metric, name in _METRIC_NAMES.items():
        if metric in summary:
            lines += _metric_lines(name, summary[metric])
    if summary.get('convergence'):
        lines += _convergence_lines(summary['convergence'])
    for png in data.get('plots', []):
        lines += [f'![{osp.splitext(osp.basename(png))[0]}]({png})', '']
    return '\n'.join(lines)


def _figure(width: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, 4))
    FigureCanvasAgg(fig)
    return fig


def plot_ratio(summary: Dict[str, Any], path: str) -> Optional[str]:
    """Top-1 vs masking ratio per method (k-NN, linear probe) into
    ``path``; None (and no file) without results."""
    metrics = [m for m in ('knn_top1', 'linear_top1') if m in summary]
    if not metrics:
        return None
    fig = _figure(5 * len(metrics))
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for m in _order(summary[metric]['table']):
            cells = summary[metric]['table'][m]
            xs = [float(r) for r in cells]
            ax.errorbar(xs, [c['mean'] for c in cells.values()],
                        yerr=[c['spread'] for c in cells.values()],
                        marker='o', capsize=3, label=METHODS[m])
        ax.set_xlabel('masking ratio')
        ax.set_ylabel('top-1 (%)')
        ax.set_title('k-NN' if metric == 'knn_top1' else 'linear probe')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_convergence(summary: Dict[str, Any], path: str) -> Optional[str]:
    """k-NN top-1 vs pre-training epoch per ``method@ratio`` into
    ``path``; None (and no file) without convergence curves."""
    curves = summary.get('convergence')
    if not curves:
        return None
    fig = _figure(5)
    ax = fig.add_subplot(1, 1, 1)
    for key, pts in curves.items():
        m, r = key.split('@')
        ax.errorbar([int(e) for e in pts], [p['mean'] for p in pts.values()],
                    yerr=[p['spread'] for p in pts.values()], marker='o',
                    capsize=3, label=f'{METHODS[m]}, ratio {r}')
    ax.set_xlabel('pre-training epoch')
    ax.set_ylabel('k-NN top-1 (%)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def report(args: argparse.Namespace) -> str:
    """Aggregate ``args.work_dir/*/result.json`` into ``results.json`` and
    write the markdown (``args.report_out``, default
    ``WORK_DIR/results.md``) and its two plots beside it. The text from
    :data:`DISCUSSION_MARKER` on in an existing report is kept.

    Returns:
        str: The path of the markdown.
    """
    runs = collect(args.work_dir)
    if not runs:
        raise SystemExit(f'no */result.json under {args.work_dir}')
    path = write_results(args, runs)
    data = read_json(path)
    out = args.report_out or osp.join(args.work_dir, 'results.md')
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(out))[0]
    plots = [plot_ratio(data['summary'],
                        osp.join(out_dir, f'{stem}_ratio_sweep.png')),
             plot_convergence(data['summary'],
                              osp.join(out_dir, f'{stem}_convergence.png'))]
    data['plots'] = [osp.relpath(p, out_dir) for p in plots if p]
    text = render_markdown(data)
    # hand-written discussion below the marker survives a new report
    old = open(out).read() if osp.isfile(out) else ''
    if DISCUSSION_MARKER in old:
        text += '\n' + old[old.index(DISCUSSION_MARKER):]
    with open(out, 'w') as f:
        f.write(text)
    print(f'report: {out}; plots: {data["plots"]}; data: {path}')
    return out
