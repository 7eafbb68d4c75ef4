"""The masking-ratio sweep (issue 5): MAE random masking vs SBM vs SBAM.

The Fashion-MNIST demo (a 4-layer 64-d ViT, 4 px patches on 28 px
images) pre-trained for 3 epochs on the full training split with stock
random masking (``MAEViT``), salience-based masking at a fixed ratio
(``SBAMViT``) and SBM + per-image AMR (``SBAMViT``, ``amr.mode=sample``,
``ratio_var = min(0.1, (1 - r) / 2, r / 2)``, ``delta`` 0.2), at four
ratios and two seeds. Each cell: k-NN of the frozen encoder (k = 20,
T = 0.07, mean patch token, both full splits), k-NN after every epoch for
MAE and SBAM at 0.75 (the convergence curve), and a 2-epoch linear probe
trained by ``tools/train.py`` and scored by ``tools/test.py``
(:class:`~..evaluators.LinearProbeRun`). Baseline:
k-NN of the initial weights per seed (epoch 0 of the curves). Report:
``docs/results.md`` (results ``docs/results_ratio_sweep.json``).

The stored results were made by the former sweep tool
(``tools/benchmark/ratio_sweep.py``); the cells here run the same
commands (same options, seeds and data), and one rerun cell matched them
(see the page).
"""
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..aggregate import mean_spread, summarize
from ..evaluators import FrozenFeatures, LinearProbeRun
from ..tables import plot_convergence, plot_vs_ratio
from ..runner import hms, read_json
from ..spec import Arm, ExperimentSpec
from ..study import Study

PRETRAIN_CONFIG = 'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
LINEAR_CONFIG = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
RATIO = 'model.backbone.mask_ratio={ratio}'
#: AMR's salience threshold in the sweep
DELTA = 0.2
ARMS = (
    Arm('mae', 'MAE (random)', PRETRAIN_CONFIG,
        ('model.backbone.type=MAEViT', RATIO)),
    Arm('sbm', 'SBM (salience, fixed ratio)', PRETRAIN_CONFIG,
        ('model.backbone.type=SBAMViT', RATIO)),
    Arm('sbam', 'SBAM (SBM + AMR per image)', PRETRAIN_CONFIG,
        ('model.backbone.type=SBAMViT', RATIO,
         'model.backbone.amr.mode=sample',
         'model.backbone.amr.ratio_var={ratio_var}',
         f'model.backbone.amr.delta={DELTA}')),
)
#: metric -> its heading on the page
METRICS = {'knn_top1': 'k-NN top-1 (%)',
           'linear_top1': 'linear probe top-1 (%)'}
#: k-NN as the sweep measured it: every training image as memory bank,
#: every test image as query, batches of 500; no probe on cached features
FROZEN = FrozenFeatures(feature='avg', k=20, temperature=0.07,
                        train_images=0, test_images=0, linear_epochs=0)
#: the sweep's linear probe: 2 epochs of tools/train.py, then tools/test.py
LINEAR = LinearProbeRun(LINEAR_CONFIG, epochs=2, key='linear_top1')


def backbone_type(arm: Arm) -> Optional[str]:
    """The backbone an arm trains (``model.backbone.type=`` of its
    options); the k-NN reads its checkpoint with the same class."""
    for opt in arm.options:
        if opt.startswith('model.backbone.type='):
            return opt.split('=', 1)[1]
    return None


@dataclass(frozen=True)
class SweepKNN:
    """k-NN of the last epoch's encoder and, for the arms ``curve_arms``
    at ``curve_ratio``, after every epoch (the last point is the final
    k-NN), all on the full splits as the sweep measured them.

    ``every_epoch`` makes the runner keep every epoch's checkpoint.
    """
    frozen: FrozenFeatures = FROZEN
    curve_arms: Tuple[str, ...] = ('mae', 'sbam')
    curve_ratio: float = 0.75
    every_epoch: bool = True
    name: str = 'knn'

    def wants_curve(self, arm: str, ratio: Optional[float]) -> bool:
        return (arm in self.curve_arms and ratio is not None
                and abs(ratio - self.curve_ratio) < 1e-9)

    def _knn(self, run: Any, epoch: Optional[int] = None) -> float:
        return self.frozen.measure(
            run.config, run.checkpoint(epoch), run.cell.seed, linear=False,
            backbone_type=backbone_type(run.cell.arm))['knn_top1']

    def __call__(self, run: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(knn_top1=self._knn(run), knn=dict(
            k=self.frozen.k, temperature=self.frozen.temperature,
            feature=self.frozen.feature))
        if self.wants_curve(run.cell.arm.name, run.cell.ratio):
            last = run.spec.epochs
            out['convergence'] = [
                dict(epoch=e, knn_top1=out['knn_top1'] if e == last
                     else self._knn(run, e)) for e in range(1, last + 1)]
        return out


@dataclass(frozen=True)
class InitialKNN:
    """k-NN of the initial weights, one per seed, built as ``MAEViT`` as
    the sweep did (every arm starts from them: epoch 0 of the curves)."""
    frozen: FrozenFeatures = FROZEN
    backbone_type: str = 'MAEViT'
    name: str = 'initial_weights'

    def __call__(self, spec: ExperimentSpec) -> Dict[str, Any]:
        return {str(seed): self.frozen.measure(
            spec.arms[0].config, None, seed, linear=False,
            backbone_type=self.backbone_type) for seed in spec.seeds}


def build(**overrides: Any) -> ExperimentSpec:
    """The sweep's spec; ``overrides`` replace its fields."""
    fields: Dict[str, Any] = dict(
        name='ratio_sweep',
        title='Masking-ratio sweep: MAE vs SBM vs SBAM',
        arms=ARMS, seeds=(0, 1), epochs=3, ratios=(0.45, 0.6, 0.75, 0.9),
        images=0, amr_cap=0.1,
        evaluators=(SweepKNN(), LINEAR),
        baselines=(InitialKNN(), ),
        work_dir='work_dirs/ratio_sweep_study',
        results='docs/results_ratio_sweep.json',
        page='docs/results.md')
    fields.update(overrides)
    return ExperimentSpec(**fields)


def _initial_knn(baselines: Dict[str, Any]) -> Dict[str, float]:
    """``{seed: k-NN top-1}`` of the initial weights."""
    return {s: v['knn_top1'] for s, v in
            (baselines.get('initial_weights') or {}).items()
            if isinstance(v, dict) and 'knn_top1' in v}


def _mean_gain(table: Dict[str, Dict[str, Any]],
               reference: str = 'mae') -> Dict[str, float]:
    """Per arm, the mean over the ratios both ran of (arm's seed mean -
    the reference's seed mean), in points."""
    gain = {}
    for arm, cells in table.items():
        if arm == reference or reference not in table:
            continue
        common = sorted(set(cells) & set(table[reference]))
        if common:
            gain[arm] = sum(cells[r]['mean'] - table[reference][r]['mean']
                            for r in common) / len(common)
    return gain


def _with_epoch_zero(runs: Sequence[Dict[str, Any]],
                     conv: Dict[str, Dict[str, List[Dict[str, Any]]]],
                     init: Dict[str, float]) -> None:
    """Prepend epoch 0 (the initial weights of the curve's seeds) to each
    convergence curve, in place."""
    for arm, ratios in conv.items():
        for r, curve in ratios.items():
            vals = [init[str(run['seed'])] for run in runs
                    if run.get('convergence') and run['arm'] == arm
                    and f"{run['ratio']:.2f}" == r
                    and str(run['seed']) in init]
            if vals:
                curve.insert(0, dict(epoch=0, **mean_spread(vals)))


def _fmt(cell: Dict[str, Any]) -> str:
    return f"{cell['mean']:.2f} ± {cell['spread']:.2f}"


def _header(spec: ExperimentSpec, runs: Sequence[Dict[str, Any]],
            init: Dict[str, float], meta: Dict[str, Any]) -> List[str]:
    """Title, how the results were made, the runs and the definitions."""
    lines = [f'# {spec.title}', '',
             '*Rendered by `python tools/benchmarks/experiment.py '
             'ratio_sweep --report-only` from the stored results '
             '([results_ratio_sweep.json](results_ratio_sweep.json)); the '
             'discussion below its marker is written by hand.*', '']
    if meta.get('command'):
        lines += ['The stored sweep was run by the former sweep tool (since '
                  'folded into the experiment harness):', '', '```bash',
                  meta['command'], '```', '',
                  'The same cells through the harness:', '', '```bash',
                  'python tools/benchmarks/experiment.py ratio_sweep', '```',
                  '']
    if meta.get('machine'):
        lines += ['Machine: ' + ', '.join(
            f'{k} {v}' for k, v in meta['machine'].items() if v), '']
    if meta.get('wall_s') is not None:
        lines += [f"Wall time of the sweep: {hms(meta['wall_s'])}.", '']
    if runs:
        r0 = runs[0]
        seeds = sorted({r['seed'] for r in runs})
        lin = next((r['linear_epochs'] for r in runs
                    if r.get('linear_epochs')), None)
        if lin is None:
            lin = next((e.epochs for e in spec.evaluators
                        if isinstance(e, LinearProbeRun)), 0)
        lines += [f"{len(runs)} runs; {r0['epochs']} pre-training epochs, "
                  f'linear probe {lin} epochs, seeds {seeds}; config '
                  f"`{r0['config']}`. AMR ratio_var per ratio: "
                  + ', '.join(sorted({
                      f"{r['ratio']:.2f}: {r['ratio_var']}" for r in runs
                      if r.get('ratio_var') is not None})) + '.', '']
    lines += ['Cells: mean ± spread over seeds, spread = (max − min) / 2, '
              'top-1 % on the test split. Spread across ratios: max − min '
              'of the seed means over ratios. Mean gain: mean over ratios '
              'of (method − MAE).', '']
    if init:
        ms = mean_spread(list(init.values()))
        lines += ['Reference: k-NN top-1 of the initial weights (no '
                  f'pre-training, seeds {sorted(int(s) for s in init)}): '
                  f"{_fmt(ms)} %.", '']
    return lines


def _metric_lines(name: str, s: Dict[str, Any],
                  labels: Dict[str, str], arms: Sequence[str]) -> List[str]:
    """The table arm x ratio of one metric."""
    ratios = sorted({r for cells in s['table'].values() for r in cells})
    lines = [f'## {name}', '',
             '| method | ' + ' | '.join(ratios)
             + ' | spread across ratios | mean gain over MAE |',
             '|---' * (len(ratios) + 3) + '|']
    for arm in (a for a in arms if a in s['table']):
        cells = s['table'][arm]
        gain = s['mean_gain_over_mae'].get(arm)
        lines.append(
            f'| {labels[arm]} | ' + ' | '.join(
                _fmt(cells[r]) if r in cells else '–' for r in ratios)
            + f" | {s['spread_across_ratios'][arm]:.2f} | "
            + ('–' if gain is None else f'{gain:+.2f}') + ' |')
    return lines + ['']


def _convergence_lines(conv: Dict[str, Dict[str, List[Dict[str, Any]]]],
                       labels: Dict[str, str],
                       arms: Sequence[str]) -> List[str]:
    """k-NN after each epoch, one row per arm and ratio."""
    rows = [(arm, r, curve) for arm in arms
            for r, curve in sorted(conv.get(arm, {}).items())]
    epochs = [p['epoch'] for p in rows[0][2]]
    lines = ['## Convergence (k-NN top-1 % after each epoch)', '',
             '| run | ' + ' | '.join(f'epoch {e}' for e in epochs) + ' |',
             '|---' * (1 + len(epochs)) + '|']
    for arm, r, curve in rows:
        lines.append(f'| {labels[arm]} at {r} | '
                     + ' | '.join(_fmt(p) for p in curve) + ' |')
    return lines + ['']


def render(spec: ExperimentSpec, runs: List[Dict[str, Any]],
           baselines: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page (tables, two plots) and the data written with it."""
    arms = [a.name for a in ARMS]
    arms += [a.name for a in spec.arms if a.name not in arms]
    labels = {a.name: a.label for a in ARMS + tuple(spec.arms)}
    init = _initial_knn(baselines)
    summary = summarize(runs, list(METRICS), reference='mae')
    for m in METRICS:
        if m in summary:
            summary[m]['mean_gain_over_mae'] = _mean_gain(
                summary[m]['table'])
    if summary.get('convergence'):
        _with_epoch_zero(runs, summary['convergence'], init)
    page = spec.page or 'results.md'
    stem = osp.splitext(page)[0]
    plots = dict(ratio=stem + '_ratio_sweep.png',
                 convergence=stem + '_convergence.png')
    meta = ((read_json(spec.results) if spec.results else None)
            or {}).get('meta') or {}
    lines = _header(spec, runs, init, meta)
    for m, name in METRICS.items():
        if m in summary:
            lines += _metric_lines(name, summary[m], labels, arms)
    if summary.get('convergence'):
        lines += _convergence_lines(summary['convergence'], labels, arms)
    if runs and spec.page:
        plot_vs_ratio(summary, {'knn_top1': 'k-NN',
                                'linear_top1': 'linear probe'},
                      labels, arms, plots['ratio'])
        shown = [plots['ratio']]
        if summary.get('convergence'):
            plot_convergence(summary, labels, arms, plots['convergence'])
            shown.append(plots['convergence'])
        for png in shown:
            name = osp.splitext(osp.basename(png))[0]
            lines += [f'![{name}]({osp.basename(png)})', '']
    return '\n'.join(lines), dict(summary=summary, plots=plots)


STUDY = Study(build=build, render=render, doc=__doc__.split('\n')[0])
