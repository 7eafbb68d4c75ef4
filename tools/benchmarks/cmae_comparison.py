"""CMAE vs CMAE + SBAM (patch-embedding salience per 2 x 2 cell) on
Fashion-MNIST: same schedule, several seeds, the online encoder's k-NN
(mean patch token and class token) and linear probe (class token, on
cached features), plus learning-rate-0 control runs (``--lr0-seeds``).
Resumable: finished runs are read back from their result.json, an
interrupted pre-training resumes.

Example:
    python tools/benchmarks/cmae_comparison.py --epochs 2 --images 10240 --lr0-seeds 0 \\
        --seeds 0 1 --work-dir work_dirs/cmae_comparison --out docs/results_cmae.json
"""
import argparse
import json
import time

from mmsbam.analysis.cmae_comparison import ARMS, do_run, summarize
from mmsbam.analysis.ibot_comparison import render_markdown


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arms', nargs='+', choices=list(ARMS),
                        default=list(ARMS))
    parser.add_argument('--seeds', nargs='*', type=int, default=[0, 1])
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--images', type=int, default=10240,
                        help='training images per epoch (0: all 60,000)')
    parser.add_argument('--linear-epochs', type=int, default=10)
    parser.add_argument('--lr0-seeds', nargs='*', type=int, default=[],
                        help='seeds of the learning-rate-0 control runs')
    parser.add_argument('--work-dir', default='work_dirs/cmae_comparison')
    parser.add_argument('--out', help='JSON with every run and the summary')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runs = []
    # seed-major, the first seed's controls right after it
    plan = [(seed, False) for seed in args.seeds]
    for seed in args.lr0_seeds:
        at = plan.index((seed, False)) + 1 if (seed, False) in plan else 0
        plan.insert(at, (seed, True))
    for seed, lr0 in plan:
        for arm in args.arms:
            start = time.time()
            runs.append(do_run(arm, seed, args.work_dir, args.epochs,
                               args.images, args.linear_epochs, lr0))
            r = runs[-1]
            scores = '' if lr0 else (
                f'k-NN {r["knn"]:.2f} (cls {r["knn_cls"]:.2f}), linear '
                f'{r["linear"]:.2f}, ')
            print(f'{arm} seed {seed}{" lr 0" if lr0 else ""}: {scores}loss '
                  f'{r["loss_first"]:.4f} -> {r["loss_last"]:.4f} '
                  f'({time.time() - start:.0f} s)', flush=True)
            if args.out:  # partial results survive an interruption
                with open(args.out, 'w') as f:
                    json.dump(dict(args=vars(args), runs=runs,
                                   summary=summarize(runs)), f, indent=1)
    print(render_markdown(summarize(runs)))


if __name__ == '__main__':
    main()
