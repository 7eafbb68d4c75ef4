"""BootMAE vs BootMAE + SBAM on Fashion-MNIST.

Each run pre-trains one arm with ``tools/train.py`` (resumable), then
measures the student encoder (what BootMAE evaluates) by k-NN top-1 (class
token and mean patch token, in process) and a linear probe
(``tools/train.py`` + ``tools/test.py`` on the Fashion-MNIST linear
config), and reads its first and last logged losses. Arms ``*-lr0`` train
the same schedule with the learning rate at 0: the loss a run must end
below. ``tools/benchmarks/bootmae_comparison.py`` drives it.
"""
import os.path as osp
import sys
from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F

from .ibot_comparison import linear_probe, loss_windows
from .ibot_comparison import render_markdown  # noqa: F401  (re-exported)
from .models import eval_config, load_weights
from ..experiments.aggregate import mean_spread
from ..experiments.runner import read_json, run_logged, write_json

__all__ = ['ARMS', 'pretrain_options', 'student_knn', 'do_run',
           'summarize', 'render_markdown']

PLAIN = 'configs/fmnist/bootmae_vit-tiny-p4_1xb256-5e_fmnist.py'
TWIN = 'configs/fmnist/bootmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
#: arm -> (config, learning rate: 1.0 the config's, 0.0 none)
ARMS = {
    'bootmae': (PLAIN, 1.0),
    'bootmae-sbam': (TWIN, 1.0),
    'bootmae-lr0': (PLAIN, 0.0),
    'bootmae-sbam-lr0': (TWIN, 0.0),
}


def pretrain_options(arm: str, epochs: int, seed: int,
                     images: int) -> List[str]:
    """``--cfg-options`` of one pre-training: epochs (the LR schedule and
    the lambda_f ramp, a quarter of the run, end with them), seed, the
    training subset, and LR 0 for the ``-lr0`` arms."""
    opts = [f'train_cfg.max_epochs={epochs}',
            f'param_scheduler.1.end={epochs}',
            f'model.feature_ramp_epochs={epochs / 4}',
            f'randomness.seed={seed}',
            'default_hooks.checkpoint.max_keep_ckpts=1',
            'default_hooks.logger.interval=5']
    if ARMS[arm][1] == 0.0:  # the cosine's absolute floor too
        opts += ['optim_wrapper.optimizer.lr=0.0',
                 'param_scheduler.1.eta_min=0.0']
    if images:
        opts.append(f'train_dataloader.dataset.indices={images}')
    return opts


@torch.no_grad()
def _tokens_pooled(model, loader) -> Dict[str, tuple]:
    """L2-normalised class token and mean patch token of every image, one
    encoder pass per batch, with the labels."""
    feats: Dict[str, list] = dict(cls=[], avg=[])
    labels = []
    model.eval()
    for data in loader:
        data = model.data_preprocessor(data, training=False)
        tokens = model.backbone(data['inputs'], mask=None)[-1]
        feats['cls'].append(F.normalize(tokens[:, 0].float(), dim=1))
        feats['avg'].append(F.normalize(tokens[:, 1:].mean(1).float(),
                                        dim=1))
        labels.append(torch.cat(
            [s.gt_label.view(-1) for s in data['data_samples']]))
    y = torch.cat(labels).long()
    return {name: (torch.cat(f), y) for name, f in feats.items()}


def student_knn(config: str, ckpt: str, k: int = 20,
                images: int = 0) -> Dict[str, float]:
    """k-NN top-1 (%) of the student encoder, train split vs test split:
    class token (``knn_cls``) and mean patch token (``knn_avg``).
    ``images`` > 0 keeps the first ``images`` of each split."""
    from ..evaluation.knn import build_encoder_model, knn_top1, split_loader
    cfg = eval_config(config)
    if images:
        cfg.train_dataloader.dataset.indices = images
    model = build_encoder_model(cfg)
    load_weights(model, ckpt, strict=True)
    train, test = (_tokens_pooled(model, split_loader(cfg, test_mode, 500))
                   for test_mode in (False, True))
    return {f'knn_{name}': knn_top1(train[name], test[name], ks=(k, ))[k]
            for name in ('cls', 'avg')}


def do_run(arm: str, seed: int, work_dir: str, epochs: int, images: int,
           linear_epochs: int, eval_images: int = 0) -> Dict[str, Any]:
    """One arm and seed, end to end; reuses a finished run's result.json
    and resumes an interrupted pre-training. ``-lr0`` arms are only
    pre-trained (their losses are the reference). ``eval_images`` > 0
    keeps the first ``eval_images`` of each split for the k-NN and of the
    training split for the linear probe (its test split stays whole)."""
    run_dir = osp.abspath(osp.join(work_dir, f'{arm}_s{seed}'))
    done = read_json(osp.join(run_dir, 'result.json'))
    if done:
        return done
    config = ARMS[arm][0]
    pre_dir = osp.join(run_dir, 'pretrain')
    cmd = [sys.executable, 'tools/train.py', config, '--work-dir', pre_dir]
    if osp.isfile(osp.join(pre_dir, 'last_checkpoint')):
        cmd.append('--resume')
    cmd += ['--cfg-options'] + pretrain_options(arm, epochs, seed, images)
    _, seconds = run_logged(cmd, osp.join(run_dir, 'pretrain.log'))
    result = dict(arm=arm, seed=seed, epochs=epochs, images=images,
                  pretrain_s=seconds, command=' '.join(cmd),
                  **loss_windows(run_dir, warmup_epochs=0))
    if ARMS[arm][1] != 0.0:
        ckpt = osp.join(pre_dir, f'epoch_{epochs}.pth')
        result.update(student_knn(config, ckpt, images=eval_images))
        result['linear'] = linear_probe(run_dir, ckpt, seed, linear_epochs,
                                        images=eval_images)
        result['eval_images'] = eval_images
    write_json(osp.join(run_dir, 'result.json'), result)
    return result


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Mean and spread per arm of every measure the arm's runs share."""
    out = {}
    for arm in ARMS:
        mine = [r for r in runs if r['arm'] == arm]
        if not mine:
            continue
        keys = [k for k, v in mine[0].items() if isinstance(v, float)
                and k != 'pretrain_s' and all(k in r for r in mine)]
        out[arm] = {k: mean_spread([r[k] for r in mine]) for k in keys}
    return out
