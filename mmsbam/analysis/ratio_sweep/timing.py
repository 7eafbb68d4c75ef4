"""How long the sweep will take: a short calibration run of the real
config on this machine, and the projection of every phase from it."""
import argparse
import glob
import json
import math
import os.path as osp
from typing import Dict, Tuple

from .execute import run_logged
from .knn import dataset_sizes, seconds_per_image
from .runs import (hms, load_cfg, pretrain_cmd, schedule_options, show,
                   wants_convergence)

__all__ = ['calibrate', 'project', 'print_projection']


def _logged_iter_times(work_dir: str) -> list:
    """The ``time`` of every logged iteration under ``work_dir``."""
    times = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            times += [json.loads(line)['time'] for line in f
                      if '"time"' in line]
    return times


def calibrate(args: argparse.Namespace) -> Dict[str, float]:
    """Seconds per iteration, start-up, per-image forward, on this machine.

    Runs ``args.calibrate_iters`` iterations of SBAM at the first ratio
    (one-epoch schedule, into ``WORK_DIR/_calibration``) and times a
    frozen forward.

    Returns:
        dict: ``iter``, ``startup`` and ``image`` in seconds.
    """
    cfg = load_cfg(args.config, args.cfg_options)
    batch = cfg.train_dataloader.batch_size
    n_iter = args.calibrate_iters
    cal_dir = osp.join(osp.abspath(args.work_dir), '_calibration')
    cmd, _ = pretrain_cmd(cal_dir, 'sbam', args.ratios[0], 0,
                          schedule_options(cfg, 1), args)
    cmd += [f'train_dataloader.dataset.indices={batch * n_iter}',
            f'default_hooks.logger.interval={max(1, n_iter // 2)}']
    print(f'calibration ({n_iter} iterations): {show(cmd)}', flush=True)
    _, wall = run_logged(cmd, osp.join(cal_dir, 'calibration.log'))
    times = _logged_iter_times(osp.join(cal_dir, 'pretrain'))
    t_iter = times[-1] if times else wall / n_iter
    startup = max(wall - t_iter * n_iter, 0.0)
    return dict(iter=t_iter, startup=startup, image=seconds_per_image(args))


def project(cal: Dict[str, float], sizes: Tuple[int, int, int],
            args: argparse.Namespace) -> Dict[str, float]:
    """Projected seconds per phase of one run, and of the whole sweep.

    Args:
        cal (dict): From :func:`calibrate`.
        sizes (tuple): (train images, test images, train batch size).
        args (argparse.Namespace): The sweep's command line.

    Returns:
        dict: ``pretrain``, ``knn``, ``linear``, ``run`` (seconds of one
        run), ``total`` (the sweep, with ``--jobs 1``) and ``runs``.
    """
    n_train, n_test, batch = sizes
    iters = math.ceil(n_train / batch) * args.epochs
    knn = (n_train + n_test) * cal['image']
    pre = cal['startup'] + iters * cal['iter']
    lin = 0.0
    if args.linear_epochs:
        lin = (2 * cal['startup'] + args.linear_epochs * n_train
               * cal['image'] * 1.1 + n_test * cal['image'])
    runs = len(args.methods) * len(args.ratios) * len(args.seeds)
    conv = sum(1 for m in args.methods for r in args.ratios
               if wants_convergence(m, r, args)) * len(args.seeds)
    total = runs * (pre + knn + lin) + conv * (args.epochs - 1) * knn
    return dict(pretrain=pre, knn=knn, linear=lin, run=pre + knn + lin,
                total=total, runs=runs)


def print_projection(args: argparse.Namespace) -> Dict[str, float]:
    """Calibrate, print the measurements and the projected times, and
    return the projection."""
    cal = calibrate(args)
    proj = project(cal, dataset_sizes(args), args)
    print(f"calibration: {cal['iter']:.3f} s/iter, start-up "
          f"{cal['startup']:.1f} s, frozen forward "
          f"{1000 * cal['image']:.2f} ms/image")
    print(f"projected per run: pre-training {proj['pretrain']:.0f} s, "
          f"k-NN {proj['knn']:.0f} s, linear probe {proj['linear']:.0f} s"
          f"; {proj['runs']} runs: total {hms(proj['total'])}", flush=True)
    return proj
