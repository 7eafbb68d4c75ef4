"""CMAE vs CMAE + SBAM on Fashion-MNIST.

Each run pre-trains one arm with ``tools/train.py`` (resumable), then
embeds the train and test splits once with the frozen online encoder (the
images resized 28 -> 32 px) and measures the k-NN top-1 of the mean patch
token and of the class token, and a linear probe on the class token
(:func:`mmsbam.evaluation.linear_probe_top1`: the head and schedule of the
Fashion-MNIST linear config, on cached features).
``tools/benchmarks/cmae_comparison.py`` drives it; ``lr0`` control runs
(pre-training only, learning rate 0) give the loss an untrained model
keeps.
"""
import glob
import json
import os.path as osp
import sys
from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F

from .models import eval_config, load_weights
from ..experiments.aggregate import mean_spread
from ..experiments.runner import read_json, run_logged, write_json

__all__ = ['ARMS', 'pretrain_options', 'eval_options', 'encoder_features',
           'evaluate', 'logged_losses', 'loss_windows', 'do_run',
           'summarize']

ARMS = {
    'cmae': 'configs/fmnist/cmae_vit-tiny-p4_1xb256-5e_fmnist.py',
    'cmae-sbam': 'configs/fmnist/cmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py',
}
#: evaluation pipeline: the 28 px images at the encoder's 32 px
EVAL_PIPELINE = [dict(type='Resize', scale=32, interpolation='bicubic'),
                 dict(type='PackInputs')]


def pretrain_options(epochs: int, seed: int, images: int,
                     lr: float = None) -> List[str]:
    """``--cfg-options`` of one pre-training: epochs (the cosine ends with
    them), seed, training subset and, for a control run, the LR."""
    opts = [f'train_cfg.max_epochs={epochs}',
            f'param_scheduler.1.T_max={max(epochs - 1, 1)}',
            f'param_scheduler.1.end={epochs}', f'randomness.seed={seed}',
            'default_hooks.checkpoint.max_keep_ckpts=1']
    if images:
        opts.append(f'train_dataloader.dataset.indices={images}')
    if lr is not None:
        opts.append(f'optim_wrapper.optimizer.lr={lr}')
    return opts


def logged_losses(run_dir: str) -> List[Dict[str, float]]:
    """The logged training records (``loss``, ``loss_rc``, ``loss_ct``,
    ``iter``) of a pre-training, over every log directory of the run in
    time order (a resumed run logs into a new one), one per iteration."""
    by_iter = {}
    for path in sorted(glob.glob(osp.join(run_dir, 'pretrain', '*',
                                          'vis_data', 'scalars.json'))):
        with open(path) as f:
            for record in map(json.loads, f):
                if 'loss' in record:
                    by_iter[record['iter']] = record
    return [by_iter[i] for i in sorted(by_iter)]


def loss_windows(run_dir: str, first: float = 0.1,
                 last: float = 0.2) -> Dict[str, float]:
    """Mean logged loss (and its two terms) over the first 10 % and the
    last 20 % of the logged iterations: ``loss_first``, ``loss_last``,
    ``loss_rc_last``, ``loss_ct_last``."""
    records = logged_losses(run_dir)
    if not records:
        raise ValueError(f'no logged loss under {run_dir}/pretrain')
    n_first = max(1, int(len(records) * first))
    n_last = max(1, int(len(records) * last))

    def mean(key, rows):
        return sum(r[key] for r in rows) / len(rows)

    return dict(loss_first=mean('loss', records[:n_first]),
                loss_last=mean('loss', records[-n_last:]),
                loss_rc_last=mean('loss_rc', records[-n_last:]),
                loss_ct_last=mean('loss_ct', records[-n_last:]))


def eval_options(config: str) -> dict:
    """A test split with the 32 px evaluation pipeline, for k-NN."""
    cfg = eval_config(config)
    root = cfg.train_dataloader.dataset.data_root
    return dict(test_dataloader=dict(dataset=dict(
        type='FashionMNIST', data_root=root, split='test', test_mode=True,
        pipeline=EVAL_PIPELINE)))


@torch.no_grad()
def encoder_features(model, loader):
    """(mean patch token, class token, labels) of every image, unnormalised,
    from the frozen online encoder (final norm applied)."""
    model.eval()
    avg, cls, labels = [], [], []
    for data in loader:
        data = model.data_preprocessor(data, training=False)
        tokens = model.backbone(data['inputs'], mask=None)[-1]
        avg.append(tokens[:, 1:].mean(1))
        cls.append(tokens[:, 0])
        labels.append(torch.cat(
            [s.gt_label.view(-1) for s in data['data_samples']]))
    return torch.cat(avg), torch.cat(cls), torch.cat(labels).long()


def evaluate(config: str, ckpt: str, seed: int, linear_epochs: int = 10,
             k: int = 20) -> Dict[str, float]:
    """k-NN top-1 (%) of the mean patch token (``knn``) and class token
    (``knn_cls``), linear probe top-1 (%) on the class token (``linear``).
    """
    from ..evaluation import (build_encoder_model, knn_top1,
                              linear_probe_top1, split_loader)
    cfg = eval_config(config, eval_options(config))
    model = build_encoder_model(cfg)
    load_weights(model, ckpt, strict=True)
    train, test = (encoder_features(model, split_loader(cfg, mode, 500))
                   for mode in (False, True))
    out = {}
    for name, i in (('knn', 0), ('knn_cls', 1)):
        out[name] = knn_top1((F.normalize(train[i], dim=1), train[2]),
                             (F.normalize(test[i], dim=1), test[2]),
                             ks=(k, ))[k]
    out['linear'] = linear_probe_top1((train[1], train[2]),
                                      (test[1], test[2]),
                                      epochs=linear_epochs, seed=seed)
    return out


def do_run(arm: str, seed: int, work_dir: str, epochs: int, images: int,
           linear_epochs: int, lr0: bool = False) -> Dict[str, Any]:
    """One arm and seed, end to end; reuses a finished run's result.json
    and resumes an interrupted pre-training. ``lr0``: the control run with
    learning rate 0 (pre-training and its losses only)."""
    name = f'{arm}_s{seed}' + ('_lr0' if lr0 else '')
    run_dir = osp.abspath(osp.join(work_dir, name))
    done = read_json(osp.join(run_dir, 'result.json'))
    if done:
        return done
    pre_dir = osp.join(run_dir, 'pretrain')
    cmd = [sys.executable, 'tools/train.py', ARMS[arm], '--work-dir', pre_dir]
    if osp.isfile(osp.join(pre_dir, 'last_checkpoint')):
        cmd.append('--resume')
    cmd += ['--cfg-options'] + pretrain_options(epochs, seed, images,
                                                0.0 if lr0 else None)
    _, seconds = run_logged(cmd, osp.join(run_dir, 'pretrain.log'))
    result = dict(arm=arm, seed=seed, epochs=epochs, images=images,
                  lr0=lr0, pretrain_s=seconds, command=' '.join(cmd),
                  **loss_windows(run_dir))
    if not lr0:
        ckpt = osp.join(pre_dir, f'epoch_{epochs}.pth')
        result.update(evaluate(ARMS[arm], ckpt, seed, linear_epochs))
    write_json(osp.join(run_dir, 'result.json'), result)
    return result


def summarize(runs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Mean and spread per arm of every measure."""
    rows = {}
    for arm in ARMS:
        for lr0 in (False, True):
            mine = [r for r in runs if r['arm'] == arm and
                    bool(r.get('lr0')) == lr0]
            if not mine:
                continue
            keys = [k for k, v in mine[0].items()
                    if isinstance(v, float) and k != 'pretrain_s']
            rows[arm + (' (lr 0)' if lr0 else '')] = {
                k: mean_spread([r[k] for r in mine]) for k in keys}
    return rows
