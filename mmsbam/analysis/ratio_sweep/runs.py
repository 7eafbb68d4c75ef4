"""The runs of the masking-ratio sweep and the commands that make them.

Every path here is relative to the repository root, the working directory
of ``tools/benchmarks/ratio_sweep.py`` (it changes into it); the other
tools run as subprocesses of this Python.
"""
import argparse
import os.path as osp
import shlex
import sys
from typing import Any, List, Optional, Sequence, Tuple

from ...experiments.schedule import (cfg_options_dict, load_cfg,  # noqa: F401
                                     schedule_options)

__all__ = [
    'PRETRAIN_CONFIG', 'LINEAR_CONFIG', 'METHODS', 'DEFAULT_RATIOS',
    'TRAIN_TOOL', 'TEST_TOOL', 'KNN_TOOL', 'amr_ratio_var', 'run_name',
    'cfg_options_dict', 'load_cfg', 'schedule_options', 'method_options', 'wants_convergence',
    'pretrain_cmd', 'linear_cmds', 'knn_cmd', 'show', 'hms', 'sweep_grid',
    'schedules', 'print_dry_run'
]

PRETRAIN_CONFIG = 'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
LINEAR_CONFIG = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
TRAIN_TOOL = 'tools/train.py'
TEST_TOOL = 'tools/test.py'
KNN_TOOL = 'tools/analysis_tools/knn_eval.py'
#: The methods of the sweep and their labels in the report.
METHODS = {
    'mae': 'MAE (random)',
    'sbm': 'SBM (salience, fixed ratio)',
    'sbam': 'SBAM (SBM + AMR per image)',
}
DEFAULT_RATIOS = (0.45, 0.6, 0.75, 0.9)


def amr_ratio_var(ratio: float, cap: float = 0.1) -> float:
    """Largest half-range <= ``cap`` that keeps ratio ± it inside (0, 1)."""
    return round(min(cap, (1.0 - ratio) / 2, ratio / 2), 6)


def run_name(method: str, ratio: float, seed: int) -> str:
    """Name (and folder) of one run, e.g. ``sbam_r0.75_s0``."""
    return f'{method}_r{ratio:.2f}_s{seed}'


def method_options(method: str, ratio: float,
                   args: argparse.Namespace) -> Tuple[List[str],
                                                      Optional[float]]:
    """Backbone overrides of a method at a ratio; and AMR's ratio_var
    (None unless ``method == 'sbam'``; capped by ``args.ratio_var``)."""
    opts = [f'model.backbone.mask_ratio={ratio}']
    if method == 'mae':
        return ['model.backbone.type=MAEViT'] + opts, None
    opts = ['model.backbone.type=SBAMViT'] + opts
    if method == 'sbm':
        return opts, None
    rv = amr_ratio_var(ratio, args.ratio_var)
    return opts + ['model.backbone.amr.mode=sample',
                   f'model.backbone.amr.ratio_var={rv}',
                   f'model.backbone.amr.delta={args.delta}'], rv


def wants_convergence(method: str, ratio: float,
                      args: argparse.Namespace) -> bool:
    """Whether this run gets a k-NN after every pre-training epoch."""
    return (args.convergence and method in args.convergence_methods
            and abs(ratio - args.convergence_ratio) < 1e-9)


def pretrain_cmd(run_dir: str, method: str, ratio: float, seed: int,
                 sched: List[str], args: argparse.Namespace
                 ) -> Tuple[List[str], Optional[float]]:
    """The ``tools/train.py`` command of one pre-training (into
    ``run_dir/pretrain``), and AMR's ratio_var (see
    :func:`method_options`)."""
    mopts, rv = method_options(method, ratio, args)
    keep = -1 if wants_convergence(method, ratio, args) else 1
    opts = (mopts + sched + [f'randomness.seed={seed}',
                             f'default_hooks.checkpoint.max_keep_ckpts={keep}']
            + list(args.cfg_options))
    return ([sys.executable, TRAIN_TOOL, args.config, '--work-dir',
             osp.join(run_dir, 'pretrain')] + list(args.train_args)
            + ['--cfg-options'] + opts), rv


def linear_cmds(run_dir: str, ckpt: str, seed: int, lin_sched: List[str],
                args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """The linear probe of checkpoint ``ckpt``: its ``tools/train.py``
    and ``tools/test.py`` commands."""
    lin_dir = osp.join(run_dir, 'linear')
    train = ([sys.executable, TRAIN_TOOL, args.linear_config,
              '--work-dir', lin_dir, '--no-validate', '--cfg-options',
              f'model.backbone.init_cfg.checkpoint={ckpt}',
              f'randomness.seed={seed}', 'default_hooks.checkpoint.interval='
              f'{args.linear_epochs}'] + lin_sched
             + list(args.linear_cfg_options))
    test = [sys.executable, TEST_TOOL, args.linear_config,
            osp.join(lin_dir, f'epoch_{args.linear_epochs}.pth'),
            '--work-dir', osp.join(run_dir, 'linear_test')]
    if args.linear_cfg_options:
        test += ['--cfg-options'] + list(args.linear_cfg_options)
    return train, test


def knn_cmd(ckpt: str, args: argparse.Namespace) -> List[str]:
    """The ``tools/analysis_tools/knn_eval.py`` command giving the k-NN
    number the sweep computes in process."""
    cmd = [sys.executable, KNN_TOOL, args.config, ckpt, '--k',
           str(args.knn_k), '--temperature', str(args.knn_temperature)]
    if args.cfg_options:
        cmd += ['--cfg-options'] + list(args.cfg_options)
    return cmd


def show(cmd: Sequence[str]) -> str:
    """A command as one shell-quoted line."""
    return ' '.join(shlex.quote(c) for c in cmd)


def hms(s: float) -> str:
    """Seconds as ``1h02m03s``."""
    s = int(round(s))
    return f'{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s'


def sweep_grid(args: argparse.Namespace) -> List[Tuple[str, float, int]]:
    """(method, ratio, seed) of every run, ratio-major."""
    return [(m, r, s) for r in args.ratios for m in args.methods
            for s in args.seeds]


def schedules(args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """Schedule overrides (see :func:`schedule_options`) of the
    pre-training and of the linear probe (none without one)."""
    sched = schedule_options(load_cfg(args.config, args.cfg_options),
                             args.epochs)
    lin_sched = []
    if args.linear_epochs:
        lin_sched = schedule_options(load_cfg(args.linear_config),
                                     args.linear_epochs)
    return sched, lin_sched


def print_dry_run(grid: Sequence[Tuple[str, float, int]],
                  args: argparse.Namespace, sched: List[str],
                  lin_sched: List[str]) -> None:
    """Print the commands of every run of ``grid``; run nothing."""
    for m, r, s in grid:
        run_dir = osp.join(osp.abspath(args.work_dir), run_name(m, r, s))
        cmd, rv = pretrain_cmd(run_dir, m, r, s, sched, args)
        ckpt = osp.join(run_dir, 'pretrain', f'epoch_{args.epochs}.pth')
        print(f'# {run_name(m, r, s)}' + (f' (AMR ratio_var {rv})'
                                          if rv is not None else ''))
        print(show(cmd))
        print('# k-NN (in process; same as):', show(knn_cmd(ckpt, args)))
        if wants_convergence(m, r, args):
            print(f'# + k-NN of epoch_1..{args.epochs - 1}.pth')
        if args.linear_epochs:
            for c in linear_cmds(run_dir, ckpt, s, lin_sched, args):
                print(show(c))
    print(f'# {len(grid)} runs')
