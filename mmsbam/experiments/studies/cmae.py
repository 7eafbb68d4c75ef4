"""CMAE vs CMAE + SBAM on Fashion-MNIST (tiny ViT, CPU-sized).

Arms: CMAE and its one-line SBAM twin (patch-embedding salience per
2 x 2 cell), and both again with the learning rate at 0 (the loss an
untrained model keeps; pre-trained, not evaluated). Each cell: the logged
loss windows (and the last window of both terms, ``loss_rc``/``loss_ct``),
and the frozen online encoder on all 60,000 training and 10,000 test
images resized 28 -> 32 px: k-NN of the mean patch token and of the class
token, and a linear probe of the class token on cached features
(:func:`mmsbam.evaluation.linear_probe_top1`). Baseline: the same measures
of the initial weights, read from the seed-0 learning-rate-0 control.
Report: ``docs/results_cmae.md``.
"""
from typing import Any, Dict, List, Sequence, Tuple

from ..aggregate import mean_spread, summarize
from ..evaluators import LossWindows
from ..spec import Arm, ExperimentSpec
from ..study import DISCUSSION_MARKER, Study
from ._token_features import (InitialTokenBaseline, TokenProbe, page_fmt,
                              page_round)

PLAIN = 'configs/fmnist/cmae_vit-tiny-p4_1xb256-5e_fmnist.py'
TWIN = 'configs/fmnist/cmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
ARMS = (
    Arm('cmae', 'CMAE', PLAIN),
    Arm('cmae-sbam', 'CMAE + SBAM', TWIN),
    Arm('cmae-lr0', 'CMAE, learning rate 0', PLAIN, lr_zero=True),
    Arm('cmae-sbam-lr0', 'CMAE + SBAM, learning rate 0', TWIN,
        lr_zero=True),
)
#: result key -> column of the comparison table
METRICS = {'knn': 'k-NN, mean patch token',
           'knn_cls': 'k-NN, class token',
           'linear': 'linear probe (class token)'}
LOSSES = ('loss_last', 'loss_rc_last', 'loss_ct_last')
#: the 28 px images at the encoder's 32 px
EVAL_PIPELINE = (dict(type='Resize', scale=32, interpolation='bicubic'),
                 dict(type='PackInputs'))
PROBE = TokenProbe(keys=(('avg', 'knn'), ('cls', 'knn_cls')),
                   test_pipeline=EVAL_PIPELINE, linear_epochs=10,
                   linear_feature='cls', linear_key='linear')
COMMAND = 'python tools/benchmarks/experiment.py cmae'


def build(**overrides: Any) -> ExperimentSpec:
    """The study's spec (the stored run); ``overrides`` replace its
    fields. The cosine is fitted to ``epochs`` (``T_max`` = epochs − 1
    after the 1-epoch warm-up)."""
    fields: Dict[str, Any] = dict(
        name='cmae',
        title='CMAE vs CMAE + SBAM on Fashion-MNIST, and the cost of SBAM '
        'for CMAE',
        arms=ARMS, seeds=(0, 1), epochs=2, images=7680,
        evaluators=(LossWindows(terms=('loss_rc', 'loss_ct')), PROBE),
        baselines=(InitialTokenBaseline(PROBE, seeds=(0, ),
                                        from_lr_zero=True), ),
        work_dir='work_dirs/cmae',
        results='docs/results_cmae.json',
        page='docs/results_cmae.md')
    fields.update(overrides)
    return ExperimentSpec(**fields)


def _cell(summary: Dict[str, Any], metric: str, arm: str) -> Any:
    return summary.get(metric, {}).get('table', {}).get(arm, {}).get(
        'config')


def _comparison(runs: Sequence[Dict[str, Any]],
                arms: Sequence[Arm]) -> List[str]:
    summary = summarize(runs, list(METRICS))
    lines = ['| arm | ' + ' | '.join(METRICS.values())
             + ' | per seed: k-NN / k-NN cls / linear |',
             '|---' * (len(METRICS) + 2) + '|']
    for a in arms:
        mine = sorted((r for r in runs if r['arm'] == a.name
                       and r.get('knn') is not None),
                      key=lambda r: r['seed'])
        if a.lr_zero or not mine:
            continue
        per = '; '.join(f"s{r['seed']} " + ' / '.join(
            page_round(r[m]) for m in METRICS) for r in mine)
        lines.append(f'| {a.label} | ' + ' | '.join(
            page_fmt(_cell(summary, m, a.name)) for m in METRICS)
            + f' | {per} |')
    return lines


def _initial(baselines: Dict[str, Any]) -> List[str]:
    init = {s: v for s, v in baselines.get('initial_weights', {}).items()
            if isinstance(v, dict)}
    out = []
    for seed, v in sorted(init.items()):
        src = v.get('weights', '')
        where = (f'the encoder of the seed-{seed} learning-rate-0 control '
                 f'run (`{src}`), whose online weights never move: AdamW '
                 'with lr 0 applies neither step nor weight decay'
                 if src.endswith('.pth') else
                 f'drawn under seed {seed} in process')
        out.append(f'Initial weights ({where}), evaluated the same way: '
                   f"k-NN mean patch token **{page_round(v['knn'])} %**, "
                   f"class token **{page_round(v['knn_cls'])} %**, linear "
                   f"probe **{page_round(v['linear'])} %**.")
    return out + [''] if out else []


def _losses(runs: Sequence[Dict[str, Any]], arms: Sequence[Arm]
            ) -> Tuple[List[str], List[int]]:
    """Each arm's last loss window next to its learning-rate-0 control's,
    over the seeds that have a control."""
    controls = {a.config: a.name for a in arms if a.lr_zero}
    seeds = sorted({r['seed'] for r in runs
                    if r['arm'] in controls.values()})
    lines = ['| arm | loss (lr 1.5e-3 schedule) | loss (lr 0) | loss_rc | '
             'loss_rc (lr 0) | loss_ct | loss_ct (lr 0) |',
             '|---' * 7 + '|']
    for a in arms:
        if a.lr_zero or a.config not in controls:
            continue
        cells = []
        for key in LOSSES:
            for arm in (a.name, controls[a.config]):
                vals = [r[key] for r in runs if r['arm'] == arm
                        and r['seed'] in seeds and key in r]
                cells.append(page_fmt(mean_spread(vals), 3) if vals
                             else '–')
        lines.append(f'| {a.label} | ' + ' | '.join(cells) + ' |')
    return lines, seeds


def _setup(spec: ExperimentSpec) -> List[str]:
    iters = spec.images // 256 if spec.images else None
    return [
        f'Setup: `{PLAIN}` (CMAE: random 2 x 2-patch cells, 5 of 16 '
        f'visible) against its one-line twin `{TWIN}` (SBAM: the online '
        'view\'s patch-embedding salience, τ = 1, averaged per cell; the '
        f'same count). **{spec.epochs} epochs on the first '
        f'{spec.images:,} training images**'
        + (f' ({iters} iterations per epoch, 1 warm-up epoch, then cosine)'
           if iters else '')
        + ', not the config\'s 5 epochs on 60,000. Evaluation of the frozen '
        'online encoder on all 60,000 training and 10,000 test images '
        f'resized 28 → 32 px: weighted k-NN (k = {PROBE.k}, '
        f'T = {PROBE.temperature}) of the mean patch token and of the class '
        'token, and a linear probe of the class token (MAE\'s head: '
        'BatchNorm without affine + Linear; SGD 0.1, 1 warm-up epoch + '
        f'cosine, {PROBE.linear_epochs} epochs) trained on cached features '
        '(`mmsbam.evaluation.linear_probe_top1`; the probe config has no '
        'augmentation, so a frozen encoder gives the same inputs every '
        'epoch). The `*-lr0` arms are the same pre-trainings with the '
        'learning rate at 0 (pre-trained only).', '']


def render(spec: ExperimentSpec, runs: List[Dict[str, Any]],
           baselines: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page and the data written with it."""
    summary = summarize(runs, list(METRICS) + ['loss_first'] + list(LOSSES))
    losses, control_seeds = _losses(runs, spec.arms)
    n_iter = [r for r in runs if r.get('images')]
    iters = (n_iter[0]['epochs'] * n_iter[0]['images'] // 256
             if n_iter else None)
    parts = [
        f'# {spec.title}', '',
        f'*Tables rendered by `{COMMAND} --report-only` from the cells\' '
        'stored results ([results_cmae.json](results_cmae.json): every '
        'run\'s numbers and its exact `tools/train.py` command); the '
        'discussion below its marker is written by hand.*', '',
        f'## Comparison (tiny ViT, {len(spec.seeds)} seeds)', '',
        *_setup(spec),
        '```bash',
        f'{COMMAND}                 # every cell, then this page',
        f'{COMMAND} --dry-run       # the pre-training commands',
        f'{COMMAND} --report-only   # re-render from the stored results',
        '```', '',
        f'Mean ± half-range over seeds '
        f'{" and ".join(map(str, spec.seeds))} (top-1 %, test split):', '',
        *_comparison(runs, spec.arms), '',
        *_initial(baselines),
        '## Losses end below the same run at learning rate 0', '',
        'Each arm against the same pre-training with '
        '`optim_wrapper.optimizer.lr=0.0` (and the cosine\'s floor 0), '
        f'seed{"s" if len(control_seeds) != 1 else ""} '
        f'{", ".join(map(str, control_seeds)) or "–"}. Mean of the logged '
        'losses over the last 20 % of the logged records, at least one '
        f'({iters or "–"} iterations; the config logs every 20th iteration '
        'of an epoch):', '',
        *losses, '',
        DISCUSSION_MARKER, '']
    return '\n'.join(parts), dict(summary=summary)


STUDY = Study(build=build, render=render, doc=__doc__.split('\n')[0])
