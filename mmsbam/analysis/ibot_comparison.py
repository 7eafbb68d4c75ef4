"""iBoT vs iBoT + SBAM vs iBoT + CLS-row salience on Fashion-MNIST.

Each run pre-trains one arm with ``tools/train.py`` (resumable), extracts
the teacher's backbone (what iBoT evaluates), measures its k-NN top-1 (CLS
token, in process) and a linear probe (``tools/train.py`` +
``tools/test.py`` on the Fashion-MNIST linear config), and what the
teacher's attention points at (garment vs background) and what each arm's
masks hide. ``tools/benchmarks/ibot_comparison.py`` drives it.
"""
import os.path as osp
import random
import sys
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..masking import block_attention_salience
from .mask_content import foreground_patches, masked_content, salience_auc
from .models import eval_config, load_weights
from ..experiments.aggregate import mean_spread
from ..experiments.evaluators import VAL_ACC as TEST_ACC
from ..experiments.runner import read_json, run_logged, write_json

__all__ = [
    'ARMS', 'pretrain_options', 'extract_teacher', 'teacher_knn',
    'linear_probe',
    'mask_content_of', 'loss_windows', 'do_run', 'summarize',
    'render_markdown', 'draw_arm_masks'
]

ARMS = {
    'ibot': 'configs/fmnist/ibot_vit-tiny-p4_1xb128-5e_fmnist.py',
    'ibot-sbam': 'configs/fmnist/ibot-sbam_vit-tiny-p4_1xb128-5e_fmnist.py',
    'ibot-clsrow': 'configs/fmnist/ibot-attmask_vit-tiny-p4_1xb128-5e_fmnist.py',
}
LINEAR_CONFIG = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
#: Raw intensity (0..255) above which a patch counts as garment.
GARMENT_THRESHOLD = 40.0


def pretrain_options(epochs: int, seed: int, images: int) -> List[str]:
    """``--cfg-options`` of one pre-training: epochs (the LR and weight
    decay schedules end with them), seed and the training subset."""
    opts = [f'train_cfg.max_epochs={epochs}', f'param_scheduler.1.end={epochs}',
            f'param_scheduler.2.end={epochs}', f'randomness.seed={seed}',
            'default_hooks.checkpoint.max_keep_ckpts=1']
    if images:
        opts.append(f'train_dataloader.dataset.indices={images}')
    return opts


def extract_teacher(ckpt: str, out: str) -> str:
    """Save the teacher backbone of iBOT checkpoint ``ckpt`` to ``out``."""
    from ..models.ibot import ibot_backbone_state
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    torch.save(dict(state_dict=ibot_backbone_state(state, 'teacher')), out)
    return out


def teacher_knn(config: str, teacher_ckpt: str, k: int = 20) -> float:
    """k-NN top-1 (%) of the teacher's CLS token, train split vs test."""
    from ..evaluation.knn import (build_encoder_model, extract_features,
                                  knn_top1, split_loader)
    cfg = eval_config(config)
    model = build_encoder_model(cfg)
    load_weights(model, teacher_ckpt, strict=True)
    feats = [extract_features(model, split_loader(cfg, test_mode, 500),
                              feature='cls', log_every=0)
             for test_mode in (False, True)]
    return knn_top1(feats[0], feats[1], ks=(k, ))[k]


@torch.no_grad()
def mask_content_of(config: str, ckpt: str, num_images: int = 1000,
                    seed: int = 0) -> Dict[str, float]:
    """What the trained teacher attends to, and what the arm masks.

    On the first ``num_images`` test images: the AUC (garment over
    background) of the teacher's last-block attention received from all
    tokens and from the class token, and the garment share of the arm's
    masked patches (``masked_fg``, over masked images), the share of the
    garment they hide (``fg_hidden``) and the garment share of all patches
    (``fg_share``, what random masking would hide).
    """
    from ..evaluation.knn import build_encoder_model, split_loader
    cfg = eval_config(config)
    model = build_encoder_model(cfg)
    load_weights(model, ckpt)
    model.eval()
    loader = split_loader(cfg, True, num_images)
    images = model.data_preprocessor(next(iter(loader)))['inputs']
    teacher = model.teacher.module[0]
    _, last_input = teacher.forward_tokens(images)
    fg = foreground_patches(images, 4, GARMENT_THRESHOLD)
    out = {}
    for rows in ('all', 'cls'):
        s = block_attention_salience(teacher.layers[-1], last_input, rows)
        out[f'auc_{rows}'] = float(np.nanmean(salience_auc(s, fg).numpy()))
    torch.manual_seed(seed)
    random.seed(seed)
    masks = model.generate_masks(images, teacher, last_input)
    masked = masks.any(1)  # iBoT leaves about half of the images unmasked
    out.update(masked_content(masks[masked], fg[masked]))
    out['fg_share'] = float(fg.float().mean())
    return out


def loss_windows(run_dir: str, warmup_epochs: int = 1, first: float = 0.1,
                 last: float = 0.2) -> Dict[str, float]:
    """Mean logged pre-training loss over the first 10 % and the last 20 %
    of the logged iterations: of the whole run (``loss_first``,
    ``loss_last``) and after the teacher-temperature warm-up
    (``loss_first_t``, ``loss_last_t``; a warmer teacher raises the
    cross-entropy by itself). iBoT's loss is not monotone: compare windows.
    """
    import glob
    import json
    path, = glob.glob(osp.join(run_dir, 'pretrain', '*', 'vis_data',
                               'scalars.json'))
    with open(path) as f:
        records = [r for r in map(json.loads, f) if 'loss' in r]

    def windows(losses: List[float]) -> Tuple[float, float]:
        n_first = max(1, int(len(losses) * first))
        n_last = max(1, int(len(losses) * last))
        return (float(np.mean(losses[:n_first])),
                float(np.mean(losses[-n_last:])))

    out = dict(zip(('loss_first', 'loss_last'),
                   windows([r['loss'] for r in records])))
    after = [r['loss'] for r in records if r['epoch'] > warmup_epochs]
    if after:
        out.update(zip(('loss_first_t', 'loss_last_t'), windows(after)))
    return out


def linear_probe(run_dir: str, ckpt: str, seed: int, epochs: int,
                 config: str = LINEAR_CONFIG, images: int = 0) -> float:
    """Test top-1 (%) of a linear probe (``tools/train.py`` then
    ``tools/test.py`` on a Fashion-MNIST linear ``config``) of the backbone
    in ``ckpt``; logs and work dirs under ``run_dir``. ``images`` > 0
    trains on the first ``images`` training images only."""
    train = [sys.executable, 'tools/train.py', config, '--work-dir',
             osp.join(run_dir, 'linear'), '--no-validate', '--cfg-options',
             f'model.backbone.init_cfg.checkpoint={ckpt}',
             f'randomness.seed={seed}', f'train_cfg.max_epochs={epochs}',
             f'param_scheduler.1.T_max={max(epochs - 1, 1)}',
             f'param_scheduler.1.end={epochs}',
             f'default_hooks.checkpoint.interval={epochs}']
    if images:
        train.append(f'train_dataloader.dataset.indices={images}')
    run_logged(train, osp.join(run_dir, 'linear.log'))
    test = [sys.executable, 'tools/test.py', config,
            osp.join(run_dir, 'linear', f'epoch_{epochs}.pth'),
            '--work-dir', osp.join(run_dir, 'linear_test')]
    out, _ = run_logged(test, osp.join(run_dir, 'linear_test.log'))
    return float(TEST_ACC.findall(out)[-1])


def do_run(arm: str, seed: int, work_dir: str, epochs: int, images: int,
           linear_epochs: int) -> Dict[str, Any]:
    """One arm and seed, end to end; reuses a finished run's result.json
    and resumes an interrupted pre-training."""
    run_dir = osp.abspath(osp.join(work_dir, f'{arm}_s{seed}'))
    done = read_json(osp.join(run_dir, 'result.json'))
    if done:
        if 'loss_last_t' not in done:  # results of an earlier version
            done.update(loss_windows(run_dir))
            write_json(osp.join(run_dir, 'result.json'), done)
        return done
    pre_dir = osp.join(run_dir, 'pretrain')
    cmd = [sys.executable, 'tools/train.py', ARMS[arm], '--work-dir', pre_dir]
    if osp.isfile(osp.join(pre_dir, 'last_checkpoint')):
        cmd.append('--resume')
    cmd += ['--cfg-options'] + pretrain_options(epochs, seed, images)
    _, seconds = run_logged(cmd, osp.join(run_dir, 'pretrain.log'))
    ckpt = osp.join(pre_dir, f'epoch_{epochs}.pth')
    teacher = extract_teacher(ckpt, osp.join(run_dir, 'teacher.pth'))
    result = dict(arm=arm, seed=seed, epochs=epochs, images=images,
                  pretrain_s=seconds, command=' '.join(cmd),
                  knn=teacher_knn(ARMS[arm], teacher),
                  linear=linear_probe(run_dir, teacher, seed, linear_epochs),
                  **mask_content_of(ARMS[arm], ckpt), **loss_windows(run_dir))
    write_json(osp.join(run_dir, 'result.json'), result)
    return result


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Mean and spread per arm of every measure."""
    keys = [k for k, v in runs[0].items()
            if isinstance(v, float) and k != 'pretrain_s']
    keys += [k for k in ('loss_first', 'loss_last', 'loss_first_t',
                         'loss_last_t') if k not in keys
             and all(k in r for r in runs)]
    return {arm: {k: mean_spread([r[k] for r in runs if r['arm'] == arm])
                  for k in keys}
            for arm in ARMS if any(r['arm'] == arm for r in runs)}


def render_markdown(summary: Dict[str, Any], label: str = 'arm') -> str:
    """The results table (mean ± spread over seeds), one row per key of
    ``summary`` (headed ``label``)."""
    keys = list(next(iter(summary.values())))
    lines = [f'| {label} | ' + ' | '.join(keys) + ' |',
             '|---|' + '---|' * len(keys)]
    for arm, stats in summary.items():
        cells = [f"{s['mean']:.3f} ± {s['spread']:.3f}" if 'spread' in s
                 else f"{s['mean']:.3f}" for s in stats.values()]
        lines.append(f'| {arm} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


@torch.no_grad()
def draw_arm_masks(work_dir: str, out: str, seed: int = 0,
                   num_images: int = 8) -> str:
    """A picture of one Fashion-MNIST test image per class: the trained
    SBAM arm's teacher salience (attention received from all tokens) and
    the masks each arm's own trained model makes for it (each arm draws
    its own per-image ratios; about half the images stay unmasked)."""
    from collections import OrderedDict

    from PIL import Image

    from ..evaluation.knn import build_encoder_model
    from ..visualization import draw_masking_figure
    from .images import (FMNIST_MEAN, FMNIST_STD, fashion_mnist_per_class,
                         normalize)
    raw, names = fashion_mnist_per_class('data/fashion_mnist', num_images)
    images = np.stack(raw)[..., None]
    x = normalize(images, [FMNIST_MEAN], [FMNIST_STD])
    masks, salience = OrderedDict(), None
    for arm, config in ARMS.items():
        run_dir = osp.join(work_dir, f'{arm}_s{seed}')
        epochs = read_json(osp.join(run_dir, 'result.json'))['epochs']
        model = build_encoder_model(eval_config(config))
        load_weights(model, osp.join(run_dir, 'pretrain',
                                     f'epoch_{epochs}.pth'))
        model.eval()
        teacher = model.teacher.module[0]
        _, last_input = teacher.forward_tokens(x)
        if arm == 'ibot-sbam':
            salience = block_attention_salience(teacher.layers[-1],
                                                last_input, 'all')
        torch.manual_seed(seed)
        random.seed(seed)
        masks[arm] = model.generate_masks(x, teacher, last_input).float()
    picture = draw_masking_figure(
        np.repeat(images, 3, axis=-1), salience, masks,
        title=('iBoT on Fashion-MNIST after the comparison run (seed '
               f'{seed}): ibot-sbam teacher salience; masks of each arm'),
        row_labels=names)
    Image.fromarray(picture).save(out)
    return out

