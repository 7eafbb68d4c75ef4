"""BootMAE vs BootMAE + SBAM on Fashion-MNIST (tiny ViT, CPU-sized).

Arms: BootMAE and its SBAM twin (the configs differ only in
``model.backbone.type``), and both again with the learning rate at 0 (the
loss a real run must end below; pre-trained, not evaluated). Each cell:
the logged loss windows, the student encoder's k-NN (class token and mean
patch token, first 10,000 training images vs the test split) and a
2-epoch linear probe (``tools/train.py`` + ``tools/test.py``). Baseline:
the k-NN of the initial weights (seed 0). Report: ``docs/results_bootmae.md``,
which also shows the longer run (:func:`build_long`, stored in
``docs/results_bootmae_long.json``).
"""
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..aggregate import summarize
from ..evaluators import LinearProbeRun, LossWindows
from ..runner import read_json
from ..spec import Arm, ExperimentSpec
from ..study import DISCUSSION_MARKER, Study
from ._token_features import (InitialTokenBaseline, TokenProbe, page_fmt,
                              page_round)

PLAIN = 'configs/fmnist/bootmae_vit-tiny-p4_1xb256-5e_fmnist.py'
TWIN = 'configs/fmnist/bootmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
LINEAR = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
ARMS = (
    Arm('bootmae', '`bootmae`', PLAIN),
    Arm('bootmae-sbam', '`bootmae-sbam`', TWIN),
    Arm('bootmae-lr0', '`bootmae`, learning rate 0', PLAIN, lr_zero=True),
    Arm('bootmae-sbam-lr0', '`bootmae-sbam`, learning rate 0', TWIN,
        lr_zero=True),
)
#: arm -> its masks (the arms table)
MASKS = {
    'bootmae': 'BootMAE\'s: 30 block cells + 7 random cells of 49, '
    'per-batch roll 0..1',
    'bootmae-sbam': 'SBM of the same 37 of 49 tokens, salience from the '
    'student\'s patch embeddings (temperature 1, noise U(0, 0.5))',
}
#: result key -> column of the tables
METRICS = {'knn_cls': 'k-NN, class token (%)',
           'knn_avg': 'k-NN, mean patch token (%)',
           'linear': 'linear probe (%)'}
LOSSES = ('loss_first', 'loss_last', 'loss_first_t', 'loss_last_t')
#: the evaluation of the stored runs: first 10,000 training images
EVAL_IMAGES = 10000
PROBE = TokenProbe(keys=(('cls', 'knn_cls'), ('avg', 'knn_avg')),
                   train_images=EVAL_IMAGES)
#: the longer run on the same page: its results file and size
LONG = dict(results='docs/results_bootmae_long.json', epochs=4,
            images=12800, work_dir='work_dirs/bootmae_long')


def build(**overrides: Any) -> ExperimentSpec:
    """The study's spec (the stored 2-epoch run); ``overrides`` replace its
    fields. The λf ramp (``model.feature_ramp_epochs``) is a quarter of
    the run, whatever ``epochs`` is; the LR schedule is fitted to it."""
    fields: Dict[str, Any] = dict(
        name='bootmae',
        title='BootMAE vs BootMAE + SBAM (Fashion-MNIST, CPU), and the '
        'step cost of SBAM',
        arms=ARMS, seeds=(0, 1), epochs=2, images=5120,
        evaluators=(LossWindows(after_epoch=0), PROBE,
                    LinearProbeRun(LINEAR, epochs=2, images=EVAL_IMAGES)),
        baselines=(InitialTokenBaseline(PROBE, seeds=(0, )), ),
        work_dir='work_dirs/bootmae',
        results='docs/results_bootmae.json',
        page='docs/results_bootmae.md',
        notes=dict(long=LONG))
    fields.update(overrides)
    fields['extra_options'] = tuple(fields.get('extra_options', ())) + (
        f'model.feature_ramp_epochs={fields["epochs"] / 4}',
        'default_hooks.logger.interval=5')
    return ExperimentSpec(**fields)


def build_long(**overrides: Any) -> ExperimentSpec:
    """The five times longer run shown on the same page: 4 epochs on the
    first 12,800 images, no learning-rate-0 controls, its own results and
    no page (``experiment.py bootmae`` with the overrides of
    :data:`LONG_COMMAND`)."""
    fields: Dict[str, Any] = dict(
        arms=ARMS[:2], epochs=LONG['epochs'], images=LONG['images'],
        work_dir=LONG['work_dir'], results=LONG['results'], page='')
    fields.update(overrides)
    return build(**fields)


COMMAND = 'python tools/benchmarks/experiment.py bootmae'
LONG_COMMAND = (f'{COMMAND} --epochs {LONG["epochs"]} --images '
                f'{LONG["images"]} --arms bootmae bootmae-sbam \\\n'
                f'    --work-dir {LONG["work_dir"]} --results '
                f'{LONG["results"]} --page \'\'')


def _cell(summary: Dict[str, Any], metric: str,
          arm: str) -> Optional[Dict[str, Any]]:
    return summary.get(metric, {}).get('table', {}).get(arm, {}).get(
        'config')


def _per_seed(runs: Sequence[Dict[str, Any]], arm: str,
              metric: str) -> str:
    mine = sorted((r for r in runs if r['arm'] == arm
                   and r.get(metric) is not None), key=lambda r: r['seed'])
    vals = [page_round(r[metric]) for r in mine]
    return ' / '.join(vals)


def _results_table(runs: Sequence[Dict[str, Any]],
                   arms: Sequence[Arm]) -> List[str]:
    """The comparison table and the per-seed line of a set of runs."""
    summary = summarize(runs, list(METRICS) + list(LOSSES))
    lines = ['| arm | ' + ' | '.join(METRICS.values())
             + ' | loss, first → last logged window |',
             '|---' * (len(METRICS) + 2) + '|']
    shown = [a for a in arms if not a.lr_zero
             and _cell(summary, 'loss_last', a.name)]
    for a in shown:
        first, last = (_cell(summary, k, a.name)
                       for k in ('loss_first', 'loss_last'))
        lines.append(f'| {a.label} | ' + ' | '.join(
            page_fmt(_cell(summary, m, a.name)) for m in METRICS)
            + f" | {page_round(first['mean'])} → "
            f"{page_round(last['mean'])} |")
    seeds = sorted({r['seed'] for r in runs
                    if any(r['arm'] == a.name for a in shown)})
    per = '; '.join(
        f'{a.label} ' + ', '.join(
            (f'{name} ' if i == 0 else '') + _per_seed(runs, a.name, m)
            for name, m in (('k-NN class', 'knn_cls'),
                            ('mean', 'knn_avg'), ('linear', 'linear')))
        for i, a in enumerate(shown))
    return lines + ['', f'Per seed ({" / ".join(f"seed {s}" for s in seeds)}'
                    f'): {per}.']


def _lr_zero_line(runs: Sequence[Dict[str, Any]],
                  arms: Sequence[Arm]) -> List[str]:
    """The learning-rate-0 controls' loss windows, next to their arm's."""
    out = []
    for a in arms:
        if not a.lr_zero:
            continue
        mine = [r for r in runs if r['arm'] == a.name]
        for r in sorted(mine, key=lambda r: r['seed']):
            out.append(f"{a.label} (seed {r['seed']}): "
                       f"{page_round(r['loss_first'])} → "
                       f"{page_round(r['loss_last'])}")
    if not out:
        return []
    return ['Learning-rate-0 controls (base LR 0 and the cosine\'s absolute '
            'floor 0; mean logged loss, first → last window): '
            + '; '.join(out) + '.', '']


def _initial_line(baselines: Dict[str, Any]) -> List[str]:
    init = {s: v for s, v in baselines.get('initial_weights', {}).items()
            if isinstance(v, dict)}
    if not init:
        return []
    parts = [f"seed {s}: class token {page_round(v['knn_cls'])} %, mean "
             f"patch token {page_round(v['knn_avg'])} %"
             for s, v in sorted(init.items())]
    return ['Initial weights (the same k-NN protocol, weights drawn under the '
            'seed in process, baseline `initial_weights`): '
            + '; '.join(parts) + '.', '']


def _setup(spec: ExperimentSpec) -> List[str]:
    iters = spec.epochs * spec.images // 256 if spec.images else None
    return [
        '| arm | config | masks |', '|---|---|---|',
        *[f'| {a.label} | `{a.config}` | {MASKS.get(a.name, "")} |'
          for a in spec.arms if not a.lr_zero], '',
        f'Seeds {", ".join(map(str, spec.seeds))}; **{spec.epochs} epochs on '
        f'the first {spec.images:,} training images**'
        + (f' ({iters} iterations at batch 256)' if iters else '')
        + ', the configs\' LR schedule fitted to them, the λf ramp a '
        'quarter of the run. Each arm also runs with the learning rate at '
        '0 (`*-lr0`: pre-trained only, the loss a real run must end below). '
        'Evaluation of the **student** encoder (what BootMAE evaluates): '
        f'k-NN top-1 (k = {PROBE.k}, T = {PROBE.temperature}) of the class '
        f'token and of the mean patch token, the first {EVAL_IMAGES:,} '
        'training images vs the 10,000 test images; a 2-epoch linear probe '
        f'(`{LINEAR}`, class token) trained on the first {EVAL_IMAGES:,} '
        'training images, top-1 on the whole test split. Loss windows: mean '
        'logged loss over the first 10 % and the last 20 % of the logged '
        'iterations.', '']


def render(spec: ExperimentSpec, runs: List[Dict[str, Any]],
           baselines: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page (the stored run, its controls and the initial weights,
    then the longer run read from its own results file) and the data
    written with it."""
    summary = summarize(runs, list(METRICS) + list(LOSSES))
    long = spec.notes.get('long') or {}
    long_runs = (read_json(long['results']) or {}).get('runs', []) if (
        long.get('results') and osp.isfile(long['results'])) else []
    parts = [
        f'# {spec.title}', '',
        f'*Tables rendered by `{COMMAND} --report-only` from the cells\' '
        'stored results ([results_bootmae.json](results_bootmae.json), '
        '[results_bootmae_long.json](results_bootmae_long.json): every '
        'run\'s numbers and its exact `tools/train.py` command); the '
        'discussion below its marker is written by hand.*', '',
        'Issue 18\'s small-scale comparison: two arms that differ only in '
        '`model.backbone.type`, same schedule.', '',
        *_setup(spec),
        '```bash',
        f'{COMMAND}                 # every cell, then this page',
        f'{COMMAND} --dry-run       # the pre-training commands',
        f'{COMMAND} --report-only   # re-render from the stored results',
        '```', '',
        f'## Results (mean ± half-range over seeds '
        f'{" and ".join(map(str, spec.seeds))})', '',
        *_results_table(runs, spec.arms), '',
        *_initial_line(baselines),
        *_lr_zero_line(runs, spec.arms)]
    if long_runs:
        n = long_runs[0]
        iters = n['epochs'] * n['images'] // 256
        parts += [
            '## A five times longer run, two seeds', '',
            f"{n['epochs']} epochs on the first {n['images']:,} training "
            f'images ({iters} iterations; the same evaluation, no '
            'learning-rate-0 controls):', '',
            '```bash', LONG_COMMAND, '```', '',
            *_results_table(long_runs, ARMS), '']
    parts += [DISCUSSION_MARKER, '']
    return '\n'.join(parts), dict(summary=summary)


STUDY = Study(build=build, render=render, doc=__doc__.split('\n')[0])
