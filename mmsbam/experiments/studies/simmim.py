"""SimMIM with random cells vs SimMIM + SBAM on Fashion-MNIST.

Arms: SimMIM's random cells, SBAM choosing the cells (paper's salience,
τ = 1) and SBAM at τ = 48 (the embedding width); ratios 0.4 and 0.6 (the
pipeline's ``SimMIMMaskGenerator``), seeds 0 and 1, 4 epochs on all
60,000 images. Each cell: the frozen Swin's k-NN (pooled last stage), a
2-epoch linear probe and the garment share of what the arm masks. Report:
``docs/results_simmim.md`` (issue 11's mask-token comparison).
"""
import functools
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from ..evaluators import (FrozenFeatures, InitialWeightsBaseline,
                          LinearProbeRun)
from ..spec import Arm, ExperimentSpec
from ..study import DISCUSSION_MARKER, Study
from ._mim_measures import (GARMENT_THRESHOLD, CheckpointKNN, fmt_cell,
                            num, per_arm, repo_path)

#: name -> (label, config)
CONFIGS = {
    'random': ('random',
               'configs/fmnist/simmim_swin-tiny-w4_1xb256-3e_fmnist.py'),
    'sbam': ('SBAM',
             'configs/fmnist/simmim-sbam_swin-tiny-w4_1xb256-3e_fmnist.py'),
    'sbam-t48': ('SBAM τ = 48', 'configs/fmnist/'
                 'simmim-sbam-t48_swin-tiny-w4_1xb256-3e_fmnist.py'),
}
LINEAR_CONFIG = 'configs/fmnist/swin-tiny-w4_linear-10e_fmnist.py'
#: the page's summary table: key, header, digits
COLUMNS = (('knn', 'k-NN top-1 %', 2), ('linear', 'linear top-1 %', 2),
           ('masked_fg', 'masked cells that are garment', 3),
           ('fg_hidden', 'garment cells masked', 3))
#: columns whose best mean is set in bold
BOLD = ('knn', 'linear')


@functools.lru_cache()
def mask_generator_index(config: str) -> int:
    """Position of ``SimMIMMaskGenerator`` in the training pipeline (the
    masking ratio is set there, not in the model)."""
    from ...analysis.models import load_config
    pipeline = load_config(repo_path(config)).train_dataloader.dataset.pipeline
    return [t['type'] for t in pipeline].index('SimMIMMaskGenerator')


def arm(name: str) -> Arm:
    """The arm ``name`` of :data:`CONFIGS`, its ratio set in the
    pipeline's mask generator."""
    label, config = CONFIGS[name]
    index = mask_generator_index(config)
    return Arm(name, label, config,
               (f'train_dataloader.dataset.pipeline.{index}.mask_ratio='
                '{ratio}', ))


@dataclass(frozen=True)
class SimMIMMaskContent:
    """Garment share of what the trained arm masks on the first ``images``
    test images, at the arm's own masked count: cells drawn as
    ``SimMIMMaskGenerator`` counts them (``ceil(cells * ratio)``), chosen
    at random for the random arm and re-chosen by the SBAM backbone's
    ``replace_mask``; ``masked_fg`` (share of masked cells that are
    garment), ``fg_hidden`` (share of the garment cells masked),
    ``fg_share`` (garment share of all cells)."""
    images: int = 1000
    seed: int = 0
    name: str = 'mask_content'

    @torch.no_grad()
    def measure(self, config: str, checkpoint: str,
                ratio: float) -> Dict[str, float]:
        from ...analysis.mask_content import (foreground_patches,
                                              masked_content)
        from ...analysis.models import eval_config, load_weights
        from ...evaluation.knn import build_encoder_model, split_loader
        cfg = eval_config(config)
        model = build_encoder_model(cfg)
        load_weights(model, checkpoint)
        model.eval()
        images = model.data_preprocessor(next(iter(
            split_loader(cfg, True, self.images))))['inputs']
        gen_cfg = cfg.train_dataloader.dataset.pipeline[
            mask_generator_index(config)]
        side = gen_cfg['input_size'] // gen_cfg['mask_patch_size']
        unit = gen_cfg['mask_patch_size'] // gen_cfg['model_patch_size']
        cells = side * side
        count = int(np.ceil(cells * ratio))  # as SimMIMMaskGenerator rounds
        gen = torch.Generator().manual_seed(self.seed)
        cell_masks = torch.stack([
            torch.zeros(cells).index_fill_(
                0, torch.randperm(cells, generator=gen)[:count], 1.)
            for _ in range(len(images))]).view(-1, side, side)
        mask = cell_masks.repeat_interleave(unit, 1).repeat_interleave(
            unit, 2)
        backbone = model.backbone
        if hasattr(backbone, 'replace_mask'):
            torch.manual_seed(self.seed)
            backbone.replace_mask(images, mask)
        fg = foreground_patches(images[:, :1], gen_cfg['mask_patch_size'],
                                GARMENT_THRESHOLD)
        out = masked_content(mask[:, ::unit, ::unit].flatten(1), fg)
        out['fg_share'] = float(fg.float().mean())
        return out

    def __call__(self, run: Any) -> Dict[str, Any]:
        return self.measure(run.config, run.checkpoint(), run.cell.ratio)


#: the initial weights' k-NN (pooled last stage), one per seed
INITIAL = InitialWeightsBaseline(FrozenFeatures(
    feature='avg', train_images=0, test_images=0, linear_epochs=0))


def build(**overrides: Any) -> ExperimentSpec:
    """The study's spec (the stored runs' settings); ``overrides`` replace
    its fields."""
    fields: Dict[str, Any] = dict(
        name='simmim',
        title='SimMIM vs SimMIM + SBAM on Fashion-MNIST (a mask-token '
        'method)',
        arms=tuple(arm(n) for n in CONFIGS), seeds=(0, 1), epochs=4,
        ratios=(0.4, 0.6), images=0,
        evaluators=(CheckpointKNN(feature='avg'),
                    LinearProbeRun(LINEAR_CONFIG, epochs=2),
                    SimMIMMaskContent()),
        baselines=(INITIAL, ),
        work_dir='work_dirs/simmim', results='docs/results_simmim.json',
        page='docs/results_simmim.md')
    fields.update(overrides)
    return ExperimentSpec(**fields)


def _table(spec: ExperimentSpec, runs: List[Dict[str, Any]]
           ) -> Tuple[List[str], Dict[str, Any]]:
    """The summary table (rows: ratio, then arm) and the summary."""
    order = {a.name: i for i, a in enumerate(spec.arms)}
    labels = {a.name: a.label for a in spec.arms}
    labels.update({n: c[0] for n, c in CONFIGS.items() if n not in labels})
    runs = sorted(runs, key=lambda r: (r['ratio'], order.get(r['arm'], 99)))
    summary = per_arm(runs, [c[0] for c in COLUMNS] + ['fg_share'],
                      group=lambda r: f"{r['arm']} @ {r['ratio']:g}")
    best = {k: max((s[k]['mean'] for s in summary.values() if k in s),
                   default=None) for k in BOLD}
    lines = ['| arm @ ratio | ' + ' | '.join(c[1] for c in COLUMNS) + ' |',
             '|---' * (len(COLUMNS) + 1) + '|']
    for group, stats in summary.items():
        name, ratio = group.split(' @ ')
        cells = []
        for key, _, digits in COLUMNS:
            text = fmt_cell(stats.get(key), digits, drop_zero_spread=True)
            if key in best and key in stats and \
                    stats[key]['mean'] == best[key]:
                text = f'**{text}**'
            cells.append(text)
        lines.append(f'| {labels.get(name, name)} @ {ratio} | '
                     + ' | '.join(cells) + ' |')
    return lines, summary


def render(spec: ExperimentSpec, runs: List[Dict[str, Any]],
           baselines: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page and the data written with it (the summary per arm and
    ratio)."""
    table, summary = _table(spec, runs)
    init = {s: v['knn_top1']
            for s, v in (baselines.get(INITIAL.name) or {}).items()
            if isinstance(v, dict) and 'knn_top1' in v}
    order = sorted(init, key=int)
    init_text = (' / '.join(f'{num(init[s], 2)}' for s in order) + ' % (seeds '
                 + ' / '.join(order) + ')' if init else '(not measured)')
    fg = [r['fg_share'] for r in runs if r.get('fg_share') is not None]
    seeds = ' and '.join(map(str, spec.seeds))
    ratios = ' and '.join(f'{r:g}' for r in spec.ratios if r is not None)
    parts = [
        f'# {spec.title}', '',
        'Issue 11 asks for a small comparison on one mask-token method. '
        'SimMIM is',
        'the one that runs at Fashion-MNIST scale on a CPU with a real '
        'target (pixels;',
        'BEiT\'s and CAE\'s tokenizers cannot be downloaded here, '
        'MaskFeat\'s HOG needs a',
        '14 x 14 grid).', '',
        '## Setting', '',
        '* Model: MMPretrain\'s SimMIM config with a 2-stage Swin (48-d, '
        'depths 2-2,',
        '  heads 3-6, window 4) on 32 px images, 4 px patches (8 x 8), '
        'SimMIM\'s',
        '  linear decoder and L1 loss on masked pixels',
        f'  (`{CONFIGS["random"][1]}`). The grey',
        '  images are repeated into RGB (SimMIM\'s decoder predicts 3 '
        'channels).',
        '* Masks: SimMIM\'s `SimMIMMaskGenerator` draws cells of 8 px (2 x 2 '
        'patches,',
        '  16 cells per image) at ratio 0.4 (7 cells) or 0.6 (10 cells). The '
        'SBAM arm',
        f'  (`{CONFIGS["sbam"][1]}`, the',
        '  backbone type switched to `SBAMSimMIMSwinTransformer`) keeps each '
        'image\'s',
        '  cell count and chooses the cells by SBM: each cell scored as one '
        'token',
        '  (mean patch embedding), the paper\'s salience at τ = 1, noise '
        '0.5.',
        f'* Schedule: {spec.epochs} epochs over all 60,000 training images, '
        'batch 256, AdamW',
        f'  2e-3, 1 warm-up epoch then cosine; seeds {seeds}.',
        '* Evaluation of the frozen Swin (globally averaged last stage): '
        'weighted',
        '  k-NN (k = 20, train split vs the 10,000 test images) and a '
        '2-epoch linear',
        f'  probe (`{LINEAR_CONFIG}`, top-1 on the',
        '  test split). `masked_fg`: share of the masked cells that are '
        'garment (mean',
        '  raw intensity > 40), `fg_hidden`: share of the garment cells '
        'masked, on',
        '  1,000 test images with each trained arm\'s own masks; '
        + (f'{num(100 * np.mean(fg), 1)} %' if fg else '–')
        + ' of all cells',
        '  are garment.',
        f'* Initial weights (no pre-training): k-NN {init_text},',
        '  baseline `initial_weights`, as `python '
        'tools/analysis_tools/knn_eval.py',
        f'  {CONFIGS["random"][1]} --init --seed S`.', '',
        'Stored runs: 2-core CPU, 2026-11-27, ~40 min for the 8 runs of the '
        'first two',
        'arms (the run of `sbam @ 0.4, seed 0` was paused for 15 min while '
        'the cost',
        'benchmark ran), made by the former '
        '`tools/benchmarks/simmim_comparison.py`',
        'with the same pre-training settings. Command (every arm, ratios '
        f'{ratios};',
        '`--arms random sbam` for the first two, `--report-only` to '
        're-render this page):', '',
        '```bash', 'python tools/benchmarks/experiment.py simmim', '```', '',
        '## Results (mean ± half the range over the two seeds)', '',
        *table, '',
        'Per run (`docs/results_simmim.json` has every value and command):',
        '',
        '| arm | ratio | seed | k-NN | linear | masked_fg | fg_hidden | '
        'pre-training s |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for r in runs:
        pre = (r.get('time_s') or {}).get('pretrain')
        parts.append(
            f"| {r['arm']} | {r['ratio']:g} | {r['seed']} | "
            f"{num(r['knn'], 2)} | {num(r['linear'], 2)} | "
            f"{num(r['masked_fg'], 3)} | "
            f"{num(r['fg_hidden'], 3)} | "
            + (num(pre, 0) if pre else '–') + ' |')
    parts += ['', DISCUSSION_MARKER, '']
    return '\n'.join(parts), dict(summary=summary)


STUDY = Study(build=build, render=render, doc=__doc__.split('\n')[0])
