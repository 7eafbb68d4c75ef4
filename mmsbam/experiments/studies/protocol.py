"""Does SBAM help? The paper's protocol in small, on cluttered canvases.

Arms: MAE (random masking), SBAM as the paper trains it (random-masking
warm-up for the first quarter of the epochs through ``SBAMHook``, then SBM
+ per-image AMR) and SBM (same warm-up, fixed ratio); ratios 0.75 and 0.9;
three seeds. Each cell: k-NN after every epoch (convergence), k-NN and
linear probe of the last epoch, one short end-to-end fine-tuning recipe,
and the salience's AUC for the object. Baselines: raw pixels, initial
weights (frozen and fine-tuned). Report: ``docs/results_protocol.md``.
"""
from statistics import fmean
from typing import Any, Dict, List, Tuple

from ..aggregate import per_seed, summarize
from ..evaluators import (FineTune, FineTuneFromScratch, FrozenFeatures,
                          InitialWeightsBaseline, MaskContent,
                          RawPixelsBaseline, SalienceAUC)
from ..tables import fmt, metric_markdown, plot_convergence, plot_vs_ratio
from ..spec import Arm, ExperimentSpec
from ..study import DISCUSSION_MARKER, Study

MAE_CONFIG = 'configs/cluttered/mae_vit-tiny-p8_1xb256-cluttered64.py'
SBAM_CONFIG = 'configs/cluttered/sbam-warmup_vit-tiny-p8_1xb256-cluttered64.py'
FT_CONFIG = 'configs/cluttered/vit-tiny-p8_ft-5e_cluttered64.py'
RATIO = 'model.backbone.mask_ratio={ratio}'
WARMUP = 'custom_hooks.0.warmup_epochs={warmup_epochs}'
ARMS = (
    Arm('mae', 'MAE (random)', MAE_CONFIG, (RATIO, )),
    Arm('sbam', 'SBAM (warm-up, SBM + AMR per image)', SBAM_CONFIG,
        (RATIO, 'model.backbone.amr.ratio_var={ratio_var}', WARMUP)),
    Arm('sbm', 'SBM (warm-up, fixed ratio)', SBAM_CONFIG,
        (RATIO, 'model.backbone.amr=None', WARMUP)),
)
#: fewest seeds (paired SBAM - MAE) on which a claim is decided
MIN_SEEDS = 3
#: metric -> its name in tables and plots
METRICS = {'finetune_top1': 'fine-tuning', 'linear_top1': 'linear probe',
           'knn_top1': 'k-NN'}
FROZEN = FrozenFeatures(train_images=10000, test_images=0, linear_epochs=10,
                        every_epoch=True, curve_images=(3000, 2000),
                        curve_every=2)
FINETUNE = FineTune(FT_CONFIG, ('train_cfg.max_epochs=3',
                                'param_scheduler.1.end=3',
                                'param_scheduler.1.T_max=2',
                                'train_cfg.val_interval=3',
                                'default_hooks.checkpoint.interval=3',
                                'train_dataloader.dataset.indices=5000'))
SALIENCE = SalienceAUC(images=2000)
MASK_CONTENT = MaskContent(images=2000)
#: the maskings :class:`MaskContent` compares -> their names on the page
MASKINGS = {'random': 'random (MAE)', 'sbm': 'SBM',
            'sbam': 'SBM + AMR per image'}


def build(**overrides: Any) -> ExperimentSpec:
    """The study's spec; ``overrides`` replace its fields."""
    fields: Dict[str, Any] = dict(
        name='protocol',
        title='Does SBAM help? The paper\'s protocol at small scale',
        arms=ARMS, seeds=(0, 1, 2), epochs=12, ratios=(0.75, 0.9),
        images=10000, warmup_fraction=0.25,
        evaluators=(FROZEN, FINETUNE, SALIENCE, MASK_CONTENT),
        baselines=(RawPixelsBaseline(FROZEN),
                   InitialWeightsBaseline(FROZEN, SALIENCE),
                   FineTuneFromScratch(FINETUNE)),
        work_dir='work_dirs/protocol',
        results='docs/results_protocol.json',
        page='docs/results_protocol.md')
    fields.update(overrides)
    return ExperimentSpec(**fields)


def _seeds(baseline: Dict[str, Any]) -> List[str]:
    """The seeds of a per-seed baseline (its other keys are timings)."""
    return [k for k, v in baseline.items() if isinstance(v, dict)]


def _seed_mean(baseline: Dict[str, Dict[str, float]], key: str) -> Any:
    from ..aggregate import mean_spread
    vals = [v[key] for v in baseline.values()
            if isinstance(v, dict) and key in v]
    return mean_spread(vals) if vals else None


def _calibration(spec: ExperimentSpec, summary: Dict[str, Any],
                 runs: List[Dict[str, Any]], pix: Dict[str, Any],
                 init: Dict[str, Any], scratch: Dict[str, Any]) -> List[str]:
    """The calibration table (raw pixels, initial weights, MAE at the
    chosen schedule, with its cost per epoch) and whether pre-training
    pays: MAE's mean above both baselines by more than its seeds'
    spread."""
    ratios = [f'{r:.2f}' for r in spec.ratios]
    base = {'finetune_top1': None,
            'linear_top1': (dict(mean=pix['linear_top1'], n=1)
                            if 'linear_top1' in pix else None),
            'knn_top1': (dict(mean=pix['knn_top1'], n=1)
                         if 'knn_top1' in pix else None)}
    initial = {'finetune_top1': _seed_mean(scratch, 'finetune_top1'),
               'linear_top1': _seed_mean(init, 'linear_top1'),
               'knn_top1': _seed_mean(init, 'knn_top1')}
    lines = ['| encoder | fine-tuning | linear probe | k-NN |',
             '|---|---|---|---|',
             '| raw pixels (no network) | '
             + ' | '.join(fmt(base[m]) for m in METRICS) + ' |',
             f'| initial weights (seeds {", ".join(_seeds(init)) or "–"}) | '
             + ' | '.join(fmt(initial[m]) for m in METRICS) + ' |']
    verdicts = []
    for r in ratios:
        mae = {m: summary.get(m, {}).get('table', {}).get('mae', {}).get(r)
               for m in METRICS}
        seeds = sorted({x['seed'] for x in runs if x['arm'] == 'mae'
                        and f"{x['ratio']:.2f}" == r})
        lines.append(f'| MAE, {spec.epochs} epochs × {spec.images:,} '
                     f'images, ratio {r} (seeds '
                     f'{", ".join(map(str, seeds)) or "–"}) | '
                     + ' | '.join(fmt(mae[m]) for m in METRICS) + ' |')
        for m, name in METRICS.items():
            if not mae[m]:
                continue
            refs = [x for x in (base[m], initial[m]) if x]
            if not refs:
                continue
            best = max(refs, key=lambda x: x['mean'])
            margin = mae[m]['mean'] - best['mean']
            noise = mae[m].get('spread', 0) + best.get('spread', 0)
            verdicts.append(
                f'- ratio {r}, {name}: MAE − best baseline = '
                f'{margin:+.2f} points → pre-training '
                + ('pays' if margin > noise else 'does **not** pay')
                + ' (rule: by more than the spreads of MAE and of that '
                f'baseline, {noise:.2f})')
    return lines + [''] + verdicts


def _paired_rule(per_seed: List[float], means: List[float]) -> str:
    """The rule every claim shares, on per-seed paired differences (> 0:
    the paper's direction) and their means (one per ratio, or one):
    *holds* when every seed agrees, *does not hold* when a mean is <= 0,
    *not resolved* otherwise; *not decided* below :data:`MIN_SEEDS`
    seeds."""
    n = len(per_seed)
    if n < MIN_SEEDS:
        return (f'not decided ({n} paired seed{"s" * (n != 1)}; the rule '
                f'needs {MIN_SEEDS})')
    if any(m <= 0 for m in means):
        return 'does not hold'
    if min(per_seed) > 0:
        return 'holds'
    return 'not resolved (mean in the paper\'s direction, not every seed)'


def _paired_seeds(cells: Dict[str, Dict[str, Dict[int, Any]]],
                  ratios: List[str]) -> List[int]:
    """Seeds with a MAE and a SBAM value at every ratio (``cells`` as
    :func:`per_seed` gives them)."""
    mae, sbam = cells.get('mae', {}), cells.get('sbam', {})
    seeds = set.intersection(*(set(a.get(r, {})) for a in (mae, sbam)
                               for r in ratios))
    return sorted(seeds)


def _drop(values: Dict[str, Dict[int, float]], seed: int,
          ratios: List[str]) -> float:
    """One seed's drop from its best to its worst ratio."""
    vals = [values[r][seed] for r in ratios]
    return max(vals) - min(vals)


def _verdicts(summary: Dict[str, Any], runs: List[Dict[str, Any]],
              ratios: List[str]) -> List[str]:
    """One line per paper claim, each decided by :func:`_paired_rule` on
    per-seed differences between SBAM and MAE with the same seed:

    * gain at every ratio: SBAM − MAE at each ratio (a seed counts as
      agreeing only if it gains at every ratio; *does not hold* when the
      mean gain is <= 0 at some ratio);
    * flatter curve: MAE's drop from its best to its worst ratio minus
      SBAM's, per seed;
    * faster convergence: the mean over the measured epochs of SBAM's
      k-NN minus MAE's, per seed.

    Claims with fewer than :data:`MIN_SEEDS` paired seeds are *not
    decided* (the figures are still shown)."""
    lines = []
    for metric, name in METRICS.items():
        cells = per_seed(runs, metric)
        seeds = _paired_seeds(cells, ratios)
        gains = summary.get(metric, {}).get('gain', {}).get('sbam', {})
        if not seeds:
            lines.append(f'- **Gain at every ratio, {name}**: not measured')
            continue
        mae, sbam = cells['mae'], cells['sbam']
        worst = [min(sbam[r][s] - mae[r][s] for r in ratios) for s in seeds]
        means = [fmean([sbam[r][s] - mae[r][s] for s in seeds])
                 for r in ratios]
        detail = ', '.join(f'{r}: {fmt(gains[r])}' for r in ratios
                           if r in gains)
        lines.append(f'- **Gain at every ratio, {name}**: '
                     f'{_paired_rule(worst, means)} '
                     f'(SBAM − MAE, paired, points: {detail})')
    for metric, name in METRICS.items():
        cells = per_seed(runs, metric)
        seeds = _paired_seeds(cells, ratios)
        if not seeds:
            continue
        mae, sbam = cells['mae'], cells['sbam']
        diffs = [_drop(mae, s, ratios) - _drop(sbam, s, ratios)
                 for s in seeds]
        per = ', '.join(f'{_drop(sbam, s, ratios):.2f} vs '
                        f'{_drop(mae, s, ratios):.2f}' for s in seeds)
        lines.append(f'- **Flatter curve across ratios, {name}**: '
                     f'{_paired_rule(diffs, [fmean(diffs)])} (drop from '
                     f'best to worst ratio, SBAM vs MAE, per seed: {per} '
                     'points)')
    curves = per_seed(runs, 'convergence')
    for r in ratios:
        mae, sbam = (curves.get(a, {}).get(r, {}) for a in ('mae', 'sbam'))
        diffs = []
        for s in sorted(set(mae) & set(sbam)):
            ref = {c['epoch']: c['knn_top1'] for c in mae[s]}
            d = [c['knn_top1'] - ref[c['epoch']] for c in sbam[s]
                 if c['epoch'] in ref]
            if d:  # a seed whose curves share no epoch is not paired
                diffs.append(fmean(d))
        if not diffs:
            continue
        lines.append(
            f'- **Faster convergence, ratio {r}**: '
            f'{_paired_rule(diffs, [fmean(diffs)])} (SBAM − MAE k-NN, '
            'mean over the measured epochs, per seed: '
            + ', '.join(f'{d:+.2f}' for d in diffs) + ' points)')
    return lines


def _mask_content(runs: List[Dict[str, Any]], labels: Dict[str, str],
                  arms: List[str], ratios: List[str]) -> List[str]:
    """Table: per arm's final encoders and masking, the share of object
    tokens hidden (mean ± half-range over seeds), and AMR's mean ratio."""
    from ..aggregate import mean_spread
    cells: Dict[Tuple[str, str, str], List[float]] = {}
    for run in runs:
        if not run.get('object_hidden') or run.get('ratio') is None:
            continue
        r = f'{run["ratio"]:.2f}'
        for masking, value in run['object_hidden'].items():
            cells.setdefault((run['arm'], masking, r), []).append(value)
        cells.setdefault((run['arm'], 'amr_ratio_mean', r), []).append(
            run['amr_ratio_mean'])
    if not cells:
        return ['(not measured yet)']
    lines = ['| encoder of | masks | ' + ' | '.join(ratios) + ' |',
             '|---|---|' + '---|' * len(ratios)]
    rows = dict(MASKINGS, amr_ratio_mean='AMR\'s mean ratio')
    for arm in arms:
        for key, name in rows.items():
            if not any((arm, key, r) in cells for r in ratios):
                continue
            vals = [fmt(mean_spread(cells[(arm, key, r)]), 3)
                    if (arm, key, r) in cells else '–' for r in ratios]
            lines.append(f'| {labels.get(arm, arm)} | {name} | '
                         + ' | '.join(vals) + ' |')
    return lines


def render(spec: ExperimentSpec, runs: List[Dict[str, Any]],
           baselines: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page and the data written with it."""
    import os.path as osp
    summary = summarize(runs, list(METRICS) + ['salience_auc'],
                        reference='mae')
    labels = {a.name: a.label for a in spec.arms}
    arms = [a.name for a in spec.arms]
    ratios = [f'{r:.2f}' for r in spec.ratios]
    stem = osp.splitext(spec.page or 'results_protocol.md')[0]
    plots = dict(ratio=stem + '_ratio.png',
                 convergence=stem + '_convergence.png')
    pix = baselines.get('raw_pixels', {})
    init = baselines.get('initial_weights', {})
    scratch = baselines.get('finetune_from_scratch', {})
    refs = {}
    if 'knn_top1' in pix:
        refs['raw pixels'] = pix['knn_top1']
    init_knn = _seed_mean(init, 'knn_top1')
    if init_knn:
        refs['initial weights'] = init_knn['mean']
    if runs:
        plot_vs_ratio(summary, METRICS, labels, arms, plots['ratio'])
        plot_convergence(summary, labels, arms, plots['convergence'], refs)
    calib = _calibration(spec, summary, runs, pix, init, scratch)
    done_seeds = sorted({x['seed'] for x in runs})
    auc_init = _seed_mean(init, 'salience_auc')
    parts = [
        f'# {spec.title}', '',
        '*Rendered by `python tools/benchmarks/experiment.py protocol '
        '--report-only` from the cells\' stored results; the discussion '
        'below its marker is written by hand.*', '',
        '## Setting', '',
        f'- Data: `ClutteredFashionMNIST` (docs/datasets.md): each garment '
        'rescaled and placed at a random spot of a 64×64 canvas among '
        'fragments of other garments, deterministic from its seed; same '
        f'labels. Pre-training on the first {spec.images:,} training '
        'canvases per epoch.',
        f'- Encoder: ViT, patch 8 (64 tokens), width 128, 4 layers; MAE '
        f'decoder 64 wide, 2 layers. Pre-training: `{MAE_CONFIG}` / '
        f'`{SBAM_CONFIG}`, {spec.epochs} epochs, the stock MAE recipe '
        'scaled down (AdamW, warm-up then cosine); SBAM and SBM mask at '
        f'random for the first {spec.fields(spec.cells()[0])["warmup_epochs"]}'
        ' epochs (`SBAMHook`), then by salience; SBAM adds AMR per image '
        '(`ratio_var` 0.1 at 0.75, 0.05 at 0.9).',
        f'- Fine-tuning: `{FINETUNE.config}` with '
        f'`{" ".join(FINETUNE.options)}`, the same for every arm and for '
        'the initial weights.',
        f'- Frozen encoder: mean patch token; k-NN (k={FROZEN.k}, '
        f'T={FROZEN.temperature}) with the first {FROZEN.train_images:,} '
        'training canvases as the bank, on all 10,000 test canvases; linear '
        f'probe on cached features ({FROZEN.linear_epochs} epochs). The '
        'convergence curve uses the first '
        f'{FROZEN.curve_images[0]:,} / {FROZEN.curve_images[1]:,} '
        f'canvases, every {FROZEN.curve_every}nd epoch (its reference '
        'lines are the full measure\'s).', '',
        '## Calibration: does pre-training pay here?', '', *calib, '',
        '## Arms × ratios', '',
        f'Seeds finished: {", ".join(map(str, done_seeds)) or "none"} '
        f'(the spec: {", ".join(map(str, spec.seeds))}); '
        'mean ± half-range over seeds (a single figure: one seed); "gain" rows are SBAM or SBM minus '
        'MAE with the same seed. Top-1 (%) on the 10,000 test canvases.', '']
    for m, name in METRICS.items():
        parts += [f'### {name}', '',
                  metric_markdown(summary, m, labels, arms), '']
    parts += ['### Salience AUC for the object', '',
              'Per image, P(salience of an object token > salience of a '
              'background token), on the first 2,000 unaugmented test '
              'canvases, encoder of the last epoch read as `SBAMViT`; 0.5 '
              'is chance.'
              + (f' Initial weights: {fmt(auc_init, 3)}.' if auc_init else ''),
              '', metric_markdown(summary, 'salience_auc', labels, arms,
                                  digits=3), '',
              '### What the masks hide', '',
              'Share of the object tokens (as for the AUC) that each '
              'masking hides, drawn by each cell\'s final encoder on the '
              'same canvases with the same seeded noise, so the rows of '
              'one encoder differ by the salience alone; at the nominal '
              'ratio, SBM + AMR with the ratio_var above. Random masking '
              'hides the ratio\'s share of the object on average; the '
              'paper\'s premise is that salience hides more of it.', '',
              *_mask_content(runs, labels, arms, ratios), '',
              '## Plots', '',
              f'![accuracy vs ratio]({osp.basename(plots["ratio"])})', '',
              f'![convergence]({osp.basename(plots["convergence"])})', '',
              '## Verdicts', '', *_verdicts(summary, runs, ratios), '',
              DISCUSSION_MARKER, '']
    return '\n'.join(parts), dict(summary=summary, plots=plots)


STUDY = Study(build=build, render=render, doc=__doc__.split('\n')[0])
