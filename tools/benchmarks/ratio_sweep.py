"""Masking-ratio sweep: MAE random masking vs SBM vs SBAM (AMR) (issue 5).

Pre-trains the encoder of a pre-training config (default: the Fashion-MNIST
demo, a 4-layer 64-d ViT on 28 px images with 4 px patches) with

* ``mae``:  stock random masking (``model.backbone.type=MAEViT``),
* ``sbm``:  salience-based masking (``SBAMViT``, fixed ratio),
* ``sbam``: SBM + per-image adaptive ratio
  (``SBAMViT`` + ``amr=dict(mode='sample', ...)``),

at each masking ratio and seed, every run a real, logged MMPretrain run
through MMEngine's Runner (``tools/train.py`` as a subprocess, own work
dir, ``--cfg-options`` overrides), then evaluates each frozen encoder by

* weighted k-NN (``mmsbam.evaluation.knn``, k = 20, T = 0.07, mean of
  patch tokens, train split as memory bank, test split as queries; the same
  numbers as ``tools/analysis_tools/knn_eval.py`` on the Fashion-MNIST
  config, computed in this process to save a start-up; both splits use
  the config's ``test_dataloader`` pipeline if it has one), and
* a linear probe (``--linear-config``, default
  ``configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py``, trained for
  ``--linear-epochs`` with ``tools/train.py`` and scored on the test split
  with ``tools/test.py``).

AMR's half-range must keep ``ratio ± ratio_var`` inside (0, 1); the sweep
uses ``ratio_var = min(--ratio-var, (1 - r) / 2, r / 2)`` per ratio
(0.1 at 0.45/0.6/0.75, 0.05 at 0.9) and records it in every result.

Outputs, under ``--work-dir``: ``{method}_r{ratio}_s{seed}/`` per run
(``pretrain/`` and ``linear/`` MMEngine work dirs, ``result.json``), and
the aggregate ``results.json``. ``--report`` turns ``results.json`` into a
markdown table (``--report-out``, default ``WORK_DIR/results.md``; use
``docs/results.md`` for the published one), ``ratio_sweep.png`` (accuracy
vs ratio) and ``convergence.png`` (k-NN accuracy vs pre-training epoch).

Definitions used in the report:

* *mean ± spread over seeds*: mean, and half the range (max − min) / 2, so
  that mean ± spread spans every seed's value.
* *spread across ratios* of a method: max − min over ratios of its
  seed-mean accuracy.
* *mean gain over MAE*: mean over the ratios both methods ran of
  (method's seed-mean − MAE's seed-mean), in points.

Sizing (2 CPU cores, ~2 hours): the demo config runs ~0.26 s/iter, 235
iterations per epoch at batch 256, ~61 s/epoch; k-NN over 70,000 images
~30 s; one linear-probe epoch is a frozen forward over 60,000 images
(~20-28 s) plus the test pass; each subprocess starts in ~6 s. Measured
here (2 cores, 2026-11-26, ``--epochs 2 --linear-epochs 2``, full data):
pre-training 144 s, k-NN 27 s, linear probe (train + test) 50 s per run.
With the defaults ``--epochs 3 --linear-epochs 2`` a run costs
~144 + 70 + 27 + 50 ~ 290 s, 24 runs ~ 116 min, plus ``--convergence``
(k-NN after epochs 1 and 2 for MAE and SBAM at 0.75, 2 seeds:
4 x 2 x 28 s ~ 4 min) and ``--init-reference`` (1 min): ~2 h 1 min.

Before starting, a short calibration run (``--calibrate-iters``
iterations of the real config, plus a timed forward pass) measures this
machine and the projected total (for ``--jobs 1``) is printed; the ETA
is updated after every run from the measured runs. ``--jobs 2`` runs
two pre-trainings at a time with one thread each (the smoke test uses it
to overlap the start-ups; whether it beats one run on two threads for
full epochs has not been measured). On a GPU or with an ImageNet-style
config pass ``--config``/``--linear-config`` (and larger ``--epochs``):
nothing here is specific to Fashion-MNIST except the defaults.

The machinery lives in :mod:`mmsbam.analysis.ratio_sweep`; this tool
parses the command line and runs the sweep from the repository root.

Examples:
    python tools/benchmarks/ratio_sweep.py --convergence --init-reference
    python tools/benchmarks/ratio_sweep.py --dry-run         # commands only
    python tools/benchmarks/ratio_sweep.py --resume-sweep    # continue
    python tools/benchmarks/ratio_sweep.py --report \\
        --report-out docs/results.md
    python tools/benchmarks/ratio_sweep.py --epochs 1 --seeds 0 \\
        --ratios 0.6 0.75 --methods mae sbm --linear-epochs 0 \\
        --cfg-options train_dataloader.dataset.indices=32   # smoke
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Optional, Sequence

from mmsbam.analysis.ratio_sweep import (DEFAULT_RATIOS, LINEAR_CONFIG,
                                         METHODS, PRETRAIN_CONFIG, hms,
                                         init_reference, machine,
                                         print_dry_run, print_projection,
                                         report, run_sweep, schedules, show,
                                         sweep_grid, write_results)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def build_parser() -> argparse.ArgumentParser:
    """The command line; its help is this module's docstring."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('--config', default=PRETRAIN_CONFIG,
                        help='pre-training config')
    parser.add_argument('--linear-config', default=LINEAR_CONFIG,
                        help='linear-probe config (backbone init_cfg)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    parser.add_argument('--ratios', nargs='+', type=float,
                        default=list(DEFAULT_RATIOS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--epochs', type=int, default=3,
                        help='pre-training epochs per run')
    parser.add_argument('--linear-epochs', type=int, default=2,
                        help='linear-probe epochs (0: k-NN only)')
    parser.add_argument('--ratio-var', type=float, default=0.1,
                        help='AMR half-range cap; per ratio '
                        'min(this, (1-r)/2, r/2)')
    parser.add_argument('--delta', type=float, default=0.2,
                        help='AMR salience threshold')
    parser.add_argument('--knn-k', type=int, default=20)
    parser.add_argument('--knn-temperature', type=float, default=0.07)
    parser.add_argument('--knn-batch-size', type=int, default=500)
    parser.add_argument('--work-dir', default='work_dirs/ratio_sweep')
    parser.add_argument('--resume-sweep', action='store_true',
                        help='skip runs whose result.json exists; reuse '
                        'finished pre-training checkpoints; resume '
                        'interrupted pre-trainings from their last epoch')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands, run nothing')
    parser.add_argument('--convergence', action='store_true',
                        help='k-NN after every pre-training epoch for the '
                        '--convergence-methods at --convergence-ratio')
    parser.add_argument('--convergence-methods', nargs='+',
                        default=['mae', 'sbam'], choices=list(METHODS))
    parser.add_argument('--convergence-ratio', type=float, default=0.75)
    parser.add_argument('--init-reference', action='store_true',
                        help='also k-NN of the initial weights per seed '
                        '(the floor pre-training must beat; ~30 s each)')
    parser.add_argument('--calibrate-iters', type=int, default=10,
                        help='iterations of the timing run before the '
                        'sweep (0: no calibration)')
    parser.add_argument('--report', action='store_true',
                        help='only aggregate WORK_DIR and write the report')
    parser.add_argument('--report-out', help='markdown file of --report '
                        '(default WORK_DIR/results.md)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to every pre-training (and to k-NN)')
    parser.add_argument('--linear-cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to linear-probe training and test')
    parser.add_argument('--jobs', type=int, default=1,
                        help='pre-trainings run in parallel (each with '
                        'cpu_count/jobs threads); evaluation stays serial')
    parser.add_argument('--train-args', nargs='+', default=[],
                        help='extra tools/train.py arguments, written '
                        'with "=": --train-args=--amp')
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (``argv``, default ``sys.argv``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for r in args.ratios:
        if not 0 < r < 1:
            parser.error(f'--ratios must be in (0, 1), got {r}')
    if args.epochs < 1 or args.linear_epochs < 0:
        parser.error('--epochs must be >= 1 and --linear-epochs >= 0')
    return args


def resolve_paths(args: argparse.Namespace) -> None:
    """Make the paths of the command line absolute where they are relative
    to the caller's directory, so that they keep their meaning from the
    repository root."""
    args.work_dir = osp.abspath(args.work_dir)
    if args.report_out:
        args.report_out = osp.abspath(args.report_out)
    for key in ('config', 'linear_config'):
        path = getattr(args, key)
        if osp.isfile(path) and not osp.isfile(osp.join(ROOT, path)):
            setattr(args, key, osp.abspath(path))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Report, dry run, or calibrate, run the sweep and report."""
    args = parse_args(argv)
    resolve_paths(args)
    os.chdir(ROOT)
    if args.report:
        report(args)
        return
    sched, lin_sched = schedules(args)
    grid = sweep_grid(args)
    if args.dry_run:
        print_dry_run(grid, args, sched, lin_sched)
        return
    os.makedirs(args.work_dir, exist_ok=True)
    if args.calibrate_iters > 0:
        print_projection(args)
    start = time.time()
    runs = run_sweep(grid, args, sched, lin_sched)
    if args.init_reference:
        init_reference(runs, args)
    wall = time.time() - start
    command = show(['python', 'tools/benchmarks/ratio_sweep.py']
                   + list(argv if argv is not None else sys.argv[1:]))
    path = write_results(args, runs, dict(meta=dict(
        command=command, machine=machine(), wall_s=round(wall, 1),
        finished=time.strftime('%Y-%m-%d %H:%M:%S'))))
    print(f'{len(runs)} runs in {hms(wall)}; results: {path}')
    report(args)


if __name__ == '__main__':
    main()
