"""Tables and plots of an experiment's summary (:mod:`.aggregate`)."""
from typing import Any, Callable, Dict, Optional, Sequence

__all__ = ['fmt', 'metric_markdown', 'plot_vs_ratio', 'plot_convergence']


def fmt(cell: Optional[Dict[str, Any]], digits: int = 2,
        number: Optional[Callable[[float, int], str]] = None,
        drop_zero_spread: bool = False) -> str:
    """``mean ± spread`` (``mean`` for one seed, or with
    ``drop_zero_spread`` when every seed agrees; ``–`` for none).
    ``number(x, digits)`` formats each figure (default: Python's rounding;
    a page written by hand may round halves up)."""
    if not cell:
        return '–'
    number = number or (lambda x, d: f'{x:.{d}f}')
    mean = number(cell['mean'], digits)
    if cell['n'] == 1 or (drop_zero_spread and cell['spread'] == 0):
        return mean
    return f"{mean} ± {number(cell['spread'], digits)}"


def metric_markdown(summary: Dict[str, Any], metric: str,
                    labels: Dict[str, str], arms: Sequence[str],
                    ratio_header: str = 'ratio',
                    digits: int = 2) -> str:
    """Markdown table arm x ratio of one metric, with the spread across
    ratios and, when the summary has them, the paired gains."""
    t = summary.get(metric)
    if not t:
        return '(no results yet)'
    ratios = sorted({r for arm in t['table'].values() for r in arm})
    head = [ratio_header] + [f'{r}' for r in ratios] + ['spread across']
    lines = ['| arm | ' + ' | '.join(head[1:]) + ' |',
             '|---' * len(head) + '|']
    for arm in arms:
        if arm not in t['table']:
            continue
        row = [fmt(t['table'][arm].get(r), digits) for r in ratios]
        across = (f"{t['spread_across_ratios'][arm]:.{digits}f}"
                  if len(t['table'][arm]) > 1 else '–')
        lines.append(f'| {labels.get(arm, arm)} | ' + ' | '.join(row)
                     + f' | {across} |')
    for arm in arms:
        if arm in t.get('gain', {}):
            row = [fmt(t['gain'][arm].get(r), digits) for r in ratios]
            lines.append(f'| gain of {labels.get(arm, arm)} (paired) | '
                         + ' | '.join(row) + ' | |')
    return '\n'.join(lines)


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_vs_ratio(summary: Dict[str, Any], metrics: Dict[str, str],
                  labels: Dict[str, str], arms: Sequence[str], path: str,
                  title: str = '') -> None:
    """Accuracy against masking ratio, one panel per metric, mean with
    the seeds' range as error bars."""
    plt = _pyplot()
    present = [m for m in metrics if m in summary]
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present),
                                                       3.4), squeeze=False)
    for ax, m in zip(axes[0], present):
        for arm in arms:
            cells = summary[m]['table'].get(arm)
            if not cells:
                continue
            rs = sorted(cells)
            ax.errorbar([float(r) for r in rs],
                        [cells[r]['mean'] for r in rs],
                        yerr=[cells[r]['spread'] for r in rs], marker='o',
                        capsize=3, label=labels.get(arm, arm))
        ax.set_xlabel('masking ratio')
        ax.set_ylabel(f'{metrics[m]} top-1 (%)')
        ax.set_title(metrics[m])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_convergence(summary: Dict[str, Any], labels: Dict[str, str],
                     arms: Sequence[str], path: str,
                     references: Optional[Dict[str, float]] = None) -> None:
    """k-NN after each pre-training epoch, one panel per ratio, mean over
    seeds with their range shaded; horizontal lines for ``references``
    (e.g. raw pixels, initial weights)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    conv = summary.get('convergence') or {}
    ratios = sorted({r for a in conv.values() for r in a})
    if not ratios:
        return
    fig, axes = plt.subplots(1, len(ratios), figsize=(4.6 * len(ratios),
                                                      3.4), squeeze=False)
    for ax, r in zip(axes[0], ratios):
        for arm in arms:
            curve = conv.get(arm, {}).get(r)
            if not curve:
                continue
            e = [c['epoch'] for c in curve]
            m = [c['mean'] for c in curve]
            lo = [min(c['values']) for c in curve]
            hi = [max(c['values']) for c in curve]
            line, = ax.plot(e, m, marker='.', label=labels.get(arm, arm))
            ax.fill_between(e, lo, hi, alpha=0.15, color=line.get_color())
        for name, value in (references or {}).items():
            ax.axhline(value, ls='--', lw=0.8, color='grey')
            ax.text(0.01, value, name, fontsize=7, color='grey',
                    va='bottom', transform=ax.get_yaxis_transform())
        ax.set_xlabel('pre-training epoch')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel('k-NN top-1 (%)')
        ax.set_title(f'masking ratio {r}')
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
