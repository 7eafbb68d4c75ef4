"""iBoT vs iBoT + SBAM vs iBoT + class-token salience on Fashion-MNIST.

Three arms that differ only in ``model.mask_generator`` (iBoT's blocks,
SBM on the teacher's attention received from all tokens, SBM on its
class-token row), same schedule, seeds 0 and 1, no ratio axis (each arm
keeps iBoT's per-image ratios). Each cell: the teacher's backbone
extracted (what iBoT evaluates), its k-NN (class token) and a 2-epoch
linear probe, what the teacher attends to and what the arm masks, and the
loss windows before/after the teacher-temperature step. Report:
``docs/results_ibot.md`` (issue 10's comparison).
"""
import functools
import os.path as osp
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import numpy as np
import torch

from ..evaluators import (FrozenFeatures, InitialWeightsBaseline,
                          LinearProbeRun, LossWindows)
from ..spec import Arm, ExperimentSpec
from ..study import DISCUSSION_MARKER, Study
from ._mim_measures import (GARMENT_THRESHOLD, CheckpointKNN, fmt_cell,
                            num, per_arm)

#: numbers as the page was first written: Python's rounding of the float
_f = functools.partial(num, half_up=False)

ARMS = (
    Arm('ibot', 'ibot', 'configs/fmnist/ibot_vit-tiny-p4_1xb128-5e_fmnist.py'),
    Arm('ibot-sbam', 'ibot-sbam',
        'configs/fmnist/ibot-sbam_vit-tiny-p4_1xb128-5e_fmnist.py'),
    Arm('ibot-clsrow', 'ibot-clsrow',
        'configs/fmnist/ibot-attmask_vit-tiny-p4_1xb128-5e_fmnist.py'),
)
#: what each arm masks by (the page's arms table)
MASKS = {
    'ibot': 'iBoT\'s blockwise masks',
    'ibot-sbam': 'SBM on the teacher\'s last-block attention received from '
    'all tokens (SBAM\'s column sum)',
    'ibot-clsrow': 'SBM on the teacher\'s class-token attention row '
    '(AttMask\'s rows)',
}
LINEAR_CONFIG = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
#: the picture of each arm's masks, next to the page
PICTURE = 'masks_ibot_fmnist.png'


def teacher_checkpoint(run: Any) -> str:
    """``<cell>/teacher.pth``: the teacher backbone of the last pre-training
    checkpoint, extracted once."""
    out = osp.join(run.run_dir, 'teacher.pth')
    if not osp.isfile(out):
        from ...models.ibot import ibot_backbone_state
        state = torch.load(run.checkpoint(), map_location='cpu')['state_dict']
        torch.save(dict(state_dict=ibot_backbone_state(state, 'teacher')),
                   out)
    return out


@dataclass(frozen=True)
class ExtractTeacher:
    """Save the teacher's backbone (``teacher.pth``) for the measures that
    follow."""
    name: str = 'teacher'

    def __call__(self, run: Any) -> Dict[str, Any]:
        return dict(teacher_checkpoint=teacher_checkpoint(run))


@dataclass(frozen=True)
class TeacherKNN(CheckpointKNN):
    """k-NN of the teacher's class token (``knn``)."""
    feature: str = 'cls'
    name: str = 'teacher_knn'

    def checkpoint(self, run: Any) -> str:
        return teacher_checkpoint(run)


@dataclass(frozen=True)
class TeacherLinearProbe(LinearProbeRun):
    """:class:`LinearProbeRun` of the teacher's backbone (``linear``)."""

    def __call__(self, run: Any) -> Dict[str, Any]:
        return {self.key: self.run(run.run_dir, teacher_checkpoint(run),
                                   run.cell.seed)}


@dataclass(frozen=True)
class IBOTMaskContent:
    """What the trained teacher attends to, and what the arm masks, on the
    first ``images`` test images: the AUC (garment over background) of the
    teacher's last-block attention received from all tokens (``auc_all``)
    and from the class token (``auc_cls``); the garment share of the arm's
    masked patches (``masked_fg``, over the images masked at all: iBoT
    leaves about half unmasked), the share of the garment they hide
    (``fg_hidden``) and the garment share of all patches (``fg_share``,
    what random masks would hide). Masks drawn under ``seed``."""
    images: int = 1000
    seed: int = 0
    name: str = 'mask_content'

    @torch.no_grad()
    def measure(self, config: str, checkpoint: str) -> Dict[str, float]:
        from ...analysis.mask_content import (foreground_patches,
                                              masked_content, salience_auc)
        from ...analysis.models import eval_config, load_weights
        from ...evaluation.knn import build_encoder_model, split_loader
        from ...masking import block_attention_salience
        cfg = eval_config(config)
        model = build_encoder_model(cfg)
        load_weights(model, checkpoint)
        model.eval()
        loader = split_loader(cfg, True, self.images)
        images = model.data_preprocessor(next(iter(loader)))['inputs']
        teacher = model.teacher.module[0]
        _, last_input = teacher.forward_tokens(images)
        fg = foreground_patches(images, 4, GARMENT_THRESHOLD)
        out = {}
        for rows in ('all', 'cls'):
            s = block_attention_salience(teacher.layers[-1], last_input, rows)
            out[f'auc_{rows}'] = float(np.nanmean(salience_auc(s, fg).numpy()))
        torch.manual_seed(self.seed)
        random.seed(self.seed)
        masks = model.generate_masks(images, teacher, last_input)
        masked = masks.any(1)
        out.update(masked_content(masks[masked], fg[masked]))
        out['fg_share'] = float(fg.float().mean())
        return out

    def __call__(self, run: Any) -> Dict[str, Any]:
        return self.measure(run.config, run.checkpoint())


#: the initial weights' k-NN (the teacher at step 0 is the student's
#: initialisation), class token, one per seed
INITIAL = InitialWeightsBaseline(FrozenFeatures(
    feature='cls', train_images=0, test_images=0, linear_epochs=0))


def build(**overrides: Any) -> ExperimentSpec:
    """The study's spec (the stored runs' settings); ``overrides`` replace
    its fields."""
    fields: Dict[str, Any] = dict(
        name='ibot',
        title='iBoT vs iBoT + SBAM vs iBoT + class-token salience '
        '(Fashion-MNIST, CPU)',
        arms=ARMS, seeds=(0, 1), epochs=3, ratios=(None, ), images=0,
        evaluators=(ExtractTeacher(), TeacherKNN(),
                    TeacherLinearProbe(LINEAR_CONFIG, epochs=2),
                    IBOTMaskContent(), LossWindows(after_epoch=1)),
        baselines=(INITIAL, ),
        work_dir='work_dirs/ibot', results='docs/results_ibot.json',
        page='docs/results_ibot.md')
    fields.update(overrides)
    return ExperimentSpec(**fields)


#: the summary table: key, header, digits
COLUMNS = (
    ('knn', 'k-NN top-1 (%)', 2), ('linear', 'linear top-1 (%)', 2),
    ('auc_all', 'AUC garment > background, teacher attention from all '
     'tokens', 3),
    ('auc_cls', 'from the class token', 3),
    ('masked_fg', 'garment share of masked patches', 3),
    ('fg_hidden', 'share of the garment masked', 3),
)
LOSSES = ('loss_first', 'loss_last', 'loss_first_t', 'loss_last_t')


def _initial_knn(baselines: Dict[str, Any]) -> Dict[str, float]:
    """Seed -> the initial weights' k-NN, from the baseline."""
    init = baselines.get(INITIAL.name) or {}
    return {s: v['knn_top1'] for s, v in init.items()
            if isinstance(v, dict) and 'knn_top1' in v}


def render(spec: ExperimentSpec, runs: List[Dict[str, Any]],
           baselines: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """The page and the data written with it (the summary per arm)."""
    keys = [c[0] for c in COLUMNS] + ['fg_share', *LOSSES]
    summary = per_arm(runs, keys)
    seeds = ' and '.join(map(str, spec.seeds))
    init = _initial_knn(baselines)
    order = sorted(init, key=int)
    init_and = (' and '.join(f'{_f(init[s], 2)} % (seed {s})'
                             for s in order)
                if init else '(not measured)')
    init_slash = (' / '.join(f'{_f(init[s], 2)} %' for s in order)
                  + ' (seeds ' + ' / '.join(order) + ')'
                  if init else '(not measured)')
    parts = [
        f'# {spec.title}', '',
        'Issue 10\'s small-scale comparison. Three arms that differ only in',
        f'`model.mask_generator`, same schedule, seeds {seeds}:', '',
        '| arm | config | masks |', '|---|---|---|',
        *[f'| `{a.name}` | `{a.config}` | {MASKS.get(a.name, "")} |'
          for a in spec.arms], '',
        'All three keep iBoT\'s per-image ratios (about half the images '
        'unmasked,',
        'the others U(0.1, 0.5)); SBM adds U(0, 0.5) noise to the salience '
        'and masks',
        'the most salient tokens.', '',
        'Setting: 4-layer 64-d `iBOTViT`, 28 px, 4 px patches (49 tokens), '
        '2 global',
        'crops + 2 local crops of 12 px, 256 prototypes, batch 128, all '
        '60,000',
        f'training images, {spec.epochs} epochs (1,407 iterations; LR '
        'warm-up 1 epoch then cosine;',
        'teacher temperature 0.04 in epoch 1 and 0.07 after; weight decay '
        '0.04 →',
        '0.4; per-parameter clip 3; teacher momentum 0.996 → 1). Evaluation '
        'of the',
        '**teacher** backbone (what iBoT evaluates): k-NN top-1 (k = 20, '
        'T = 0.07,',
        'class token, 60,000 train vs 10,000 test images) and a 2-epoch '
        'linear probe',
        f'(`{LINEAR_CONFIG}`, class token, top-1 on',
        'the test split). Initial weights (the teacher at step 0 is the '
        'student\'s',
        f'initialisation): k-NN {init_and}',
        '(baseline `initial_weights`, as `tools/analysis_tools/knn_eval.py '
        f'{spec.arms[0].config} --init --feature cls --seed S`).', '',
        'Stored runs: 2026-11-27, this 2-core CPU machine, about 16 minutes '
        'a run',
        '(made by the former `tools/benchmarks/ibot_comparison.py` with the '
        'same',
        'pre-training commands). Command:', '',
        '```bash',
        'python tools/benchmarks/experiment.py ibot   # --report-only: '
        're-render this page',
        '```', '',
        'Every run\'s numbers, command and timing are in',
        f'[{osp.basename(spec.results or "results_ibot.json")}]'
        f'({osp.basename(spec.results or "results_ibot.json")}).', '',
        f'## Results (mean ± half-range over seeds {seeds})', '',
        '| arm | ' + ' | '.join(c[1] for c in COLUMNS) + ' |',
        '|---' * (len(COLUMNS) + 1) + '|',
    ]
    for arm, stats in summary.items():
        parts.append(f'| {arm} | ' + ' | '.join(
            fmt_cell(stats.get(k), d, half_up=False)
            for k, _, d in COLUMNS) + ' |')
    fg = [r['fg_share'] for r in runs if r.get('fg_share') is not None]
    parts += [
        '',
        f'Initial weights: k-NN {init_slash}. '
        'Garment share of',
        'all patches: ' + (_f(np.mean(fg), 3) if fg else '–')
        + ' (what random masks would hide). The AUC and mask',
        'measures are on the first 1,000 test images, a patch being garment '
        'when its',
        'mean raw intensity exceeds 40 (`mmsbam.analysis.mask_content`), '
        'each arm\'s',
        'masks drawn by its own trained model with seed 0; masked-patch '
        'shares are',
        'over the images that are masked at all.', '',
        'Per run (loss = mean logged loss in the first 10 % → last 20 % of '
        'the',
        'iterations after the teacher-temperature step at epoch 2):', '',
        '| arm | seed | k-NN | linear | AUC all | AUC cls | garment share '
        'masked | garment masked | loss | pre-training (min) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in runs:
        pre = (r.get('time_s') or {}).get('pretrain')
        loss = (f"{_f(r['loss_first_t'], 3)} → "
                f"{_f(r['loss_last_t'], 3)}"
                if 'loss_last_t' in r else '–')
        parts.append(
            f"| {r['arm']} | {r['seed']} | {_f(r['knn'], 2)} | "
            f"{_f(r['linear'], 2)} | {_f(r['auc_all'], 3)} | "
            f"{_f(r['auc_cls'], 3)} | {_f(r['masked_fg'], 3)} | "
            f"{_f(r['fg_hidden'], 3)} | {loss} | "
            + (_f(pre / 60, 1) if pre else '–') + ' |')
    picture = _picture(spec)
    parts += [
        '', f'![Teacher salience and the masks of each arm]({PICTURE})', '',
        'One test image per class: the `ibot-sbam` teacher\'s salience '
        '(attention',
        'received from all tokens), and the masks each arm\'s trained model '
        'draws',
        '(its own per-image ratios: about half the images stay unmasked, so '
        'some',
        'rows are empty).', '', DISCUSSION_MARKER, '']
    return '\n'.join(parts), dict(summary=summary, picture=picture)


def _picture(spec: ExperimentSpec) -> str:
    """Redraw the masks picture next to the page when the first seed's
    cell of every arm has its checkpoint; its path ('' when not drawn)."""
    if not spec.page:
        return ''
    seed = spec.seeds[0]
    dirs = {a.name: osp.join(spec.work_dir, f'{a.name}_s{seed}')
            for a in spec.arms}
    ckpts = {a: osp.join(d, 'pretrain', f'epoch_{spec.epochs}.pth')
             for a, d in dirs.items()}
    if len(spec.arms) != len(ARMS) or not all(map(osp.isfile,
                                                  ckpts.values())):
        return ''
    out = osp.join(osp.dirname(spec.page), PICTURE)
    return draw_arm_masks(spec, ckpts, out, seed)


@torch.no_grad()
def draw_arm_masks(spec: ExperimentSpec, checkpoints: Dict[str, str],
                   out: str, seed: int = 0, num_images: int = 8) -> str:
    """A picture of one Fashion-MNIST test image per class: the trained
    SBAM arm's teacher salience (attention received from all tokens) and
    the masks each arm's own trained model makes for it (each arm draws
    its own per-image ratios; about half the images stay unmasked)."""
    from collections import OrderedDict

    from PIL import Image

    from ...analysis.images import (FMNIST_MEAN, FMNIST_STD,
                                    fashion_mnist_per_class, normalize)
    from ...analysis.models import eval_config, load_weights
    from ...evaluation.knn import build_encoder_model
    from ...masking import block_attention_salience
    from ...visualization import draw_masking_figure
    raw, names = fashion_mnist_per_class('data/fashion_mnist', num_images)
    images = np.stack(raw)[..., None]
    x = normalize(images, [FMNIST_MEAN], [FMNIST_STD])
    masks, salience = OrderedDict(), None
    for arm in spec.arms:
        model = build_encoder_model(eval_config(arm.config))
        load_weights(model, checkpoints[arm.name])
        model.eval()
        teacher = model.teacher.module[0]
        _, last_input = teacher.forward_tokens(x)
        if arm.name == 'ibot-sbam':
            salience = block_attention_salience(teacher.layers[-1],
                                                last_input, 'all')
        torch.manual_seed(seed)
        random.seed(seed)
        masks[arm.name] = model.generate_masks(x, teacher, last_input).float()
    picture = draw_masking_figure(
        np.repeat(images, 3, axis=-1), salience, masks,
        title=('iBoT on Fashion-MNIST after the comparison run (seed '
               f'{seed}): ibot-sbam teacher salience; masks of each arm'),
        row_labels=names)
    Image.fromarray(picture).save(out)
    return out


STUDY = Study(build=build, render=render, doc=__doc__.split('\n')[0])
