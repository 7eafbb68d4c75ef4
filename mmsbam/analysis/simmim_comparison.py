"""SimMIM with random masks vs SimMIM + SBAM on Fashion-MNIST.

Each run pre-trains one arm at one masking ratio with ``tools/train.py``
(resumable), then measures the frozen Swin's k-NN top-1 (globally averaged
last stage, in process), a linear probe (``tools/train.py`` +
``tools/test.py`` on the Swin linear config) and the garment share of what
the arm masks. ``tools/benchmarks/simmim_comparison.py`` drives it.
"""
import os.path as osp
import sys
from typing import Any, Dict, List, Sequence

import numpy as np
import torch

from .ibot_comparison import GARMENT_THRESHOLD, linear_probe
from .ibot_comparison import render_markdown as ibot_table
from .mask_content import foreground_patches, masked_content
from .models import eval_config, load_config, load_weights
from ..experiments.aggregate import mean_spread
from ..experiments.runner import read_json, run_logged, write_json

__all__ = ['ARMS', 'pretrain_options', 'encoder_knn', 'do_run', 'summarize',
           'render_markdown']

ARMS = {
    'random': 'configs/fmnist/simmim_swin-tiny-w4_1xb256-3e_fmnist.py',
    'sbam': 'configs/fmnist/simmim-sbam_swin-tiny-w4_1xb256-3e_fmnist.py',
    'sbam-t48':
    'configs/fmnist/simmim-sbam-t48_swin-tiny-w4_1xb256-3e_fmnist.py',
}
LINEAR_CONFIG = 'configs/fmnist/swin-tiny-w4_linear-10e_fmnist.py'


def mask_generator_index(config: str) -> int:
    """Position of ``SimMIMMaskGenerator`` in the training pipeline."""
    pipeline = load_config(config).train_dataloader.dataset.pipeline
    names = [t['type'] for t in pipeline]
    return names.index('SimMIMMaskGenerator')


def pretrain_options(config: str, ratio: float, epochs: int, seed: int,
                     images: int) -> List[str]:
    """``--cfg-options`` of one pre-training: the pipeline's mask ratio,
    epochs (the LR schedule ends with them), seed and training subset."""
    index = mask_generator_index(config)
    opts = [f'train_dataloader.dataset.pipeline.{index}.mask_ratio={ratio}',
            f'train_cfg.max_epochs={epochs}',
            f'param_scheduler.1.T_max={epochs - 1}',
            f'param_scheduler.1.end={epochs}', f'randomness.seed={seed}']
    if images:
        opts.append(f'train_dataloader.dataset.indices={images}')
    return opts


def encoder_knn(config: str, ckpt: str, k: int = 20) -> float:
    """k-NN top-1 (%) of the averaged last Swin stage, train vs test."""
    from ..evaluation.knn import (build_encoder_model, extract_features,
                                  knn_top1, split_loader)
    cfg = eval_config(config)
    model = build_encoder_model(cfg)
    load_weights(model, ckpt)
    feats = [extract_features(model, split_loader(cfg, test_mode, 500),
                              feature='avg', log_every=0)
             for test_mode in (False, True)]
    return knn_top1(feats[0], feats[1], ks=(k, ))[k]


@torch.no_grad()
def mask_content_of(config: str, ckpt: str, ratio: float,
                    num_images: int = 1000, seed: int = 0
                    ) -> Dict[str, float]:
    """Garment share of what the trained arm masks on test images, at the
    arm's own masked count (``masked_fg``, ``fg_hidden``, ``fg_share``)."""
    from ..evaluation.knn import build_encoder_model, split_loader
    cfg = eval_config(config)
    model = build_encoder_model(cfg)
    load_weights(model, ckpt)
    model.eval()
    images = model.data_preprocessor(next(iter(
        split_loader(cfg, True, num_images))))['inputs']
    gen_cfg = cfg.train_dataloader.dataset.pipeline[mask_generator_index(
        config)]
    side = gen_cfg['input_size'] // gen_cfg['mask_patch_size']  # cells
    unit = gen_cfg['mask_patch_size'] // gen_cfg['model_patch_size']
    cells = side * side
    count = int(np.ceil(cells * ratio))  # as SimMIMMaskGenerator rounds
    gen = torch.Generator().manual_seed(seed)
    cell_masks = torch.stack([
        torch.zeros(cells).index_fill_(
            0, torch.randperm(cells, generator=gen)[:count], 1.)
        for _ in range(len(images))]).view(-1, side, side)
    mask = cell_masks.repeat_interleave(unit, 1).repeat_interleave(unit, 2)
    backbone = model.backbone
    if hasattr(backbone, 'replace_mask'):
        torch.manual_seed(seed)
        backbone.replace_mask(images, mask)
    fg = foreground_patches(images[:, :1], gen_cfg['mask_patch_size'],
                            GARMENT_THRESHOLD)
    out = masked_content(mask[:, ::unit, ::unit].flatten(1), fg)
    out['fg_share'] = float(fg.float().mean())
    return out


def do_run(arm: str, ratio: float, seed: int, work_dir: str, epochs: int,
           images: int, linear_epochs: int) -> Dict[str, Any]:
    """One arm, ratio and seed, end to end; reuses a finished run's
    result.json and resumes an interrupted pre-training."""
    run_dir = osp.abspath(osp.join(work_dir, f'{arm}_r{ratio}_s{seed}'))
    done = read_json(osp.join(run_dir, 'result.json'))
    if done:
        return done
    pre_dir = osp.join(run_dir, 'pretrain')
    cmd = [sys.executable, 'tools/train.py', ARMS[arm], '--work-dir', pre_dir]
    if osp.isfile(osp.join(pre_dir, 'last_checkpoint')):
        cmd.append('--resume')
    cmd += ['--cfg-options'] + pretrain_options(ARMS[arm], ratio, epochs,
                                                seed, images)
    _, seconds = run_logged(cmd, osp.join(run_dir, 'pretrain.log'))
    ckpt = osp.join(pre_dir, f'epoch_{epochs}.pth')
    result = dict(arm=arm, ratio=ratio, seed=seed, epochs=epochs,
                  images=images, pretrain_s=seconds, command=' '.join(cmd),
                  knn=encoder_knn(ARMS[arm], ckpt),
                  linear=linear_probe(run_dir, ckpt, seed, linear_epochs,
                                      LINEAR_CONFIG),
                  **mask_content_of(ARMS[arm], ckpt, ratio))
    write_json(osp.join(run_dir, 'result.json'), result)
    return result


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Mean and spread over seeds of every measure, per (ratio, arm)."""
    keys = [k for k, v in runs[0].items()
            if isinstance(v, float) and k not in ('pretrain_s', 'ratio')]
    groups = sorted({(r['ratio'], r['arm']) for r in runs})
    return {f'{arm} @ {ratio}': {
        k: mean_spread([r[k] for r in runs
                        if (r['ratio'], r['arm']) == (ratio, arm)])
        for k in keys} for ratio, arm in groups}


def render_markdown(summary: Dict[str, Any]) -> str:
    """The results table (mean ± spread over seeds)."""
    return ibot_table(summary, label='arm @ ratio')
