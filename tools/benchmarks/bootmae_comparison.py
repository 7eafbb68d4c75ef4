"""BootMAE vs BootMAE + SBAM on Fashion-MNIST (tiny ViT): same schedule,
several seeds, student k-NN (class token and mean patch token) and linear
probe; ``--lr0-seeds`` adds runs with the learning rate at 0 (the loss a
run must end below). Resumable: finished runs are read back from their
result.json, an interrupted pre-training resumes.

Example:
    python tools/benchmarks/bootmae_comparison.py --epochs 2 --images 5120 \\
        --eval-images 10000 --linear-epochs 2 --seeds 0 1 --lr0-seeds 0 \\
        --work-dir work_dirs/bootmae_comparison --out docs/results_bootmae.json
"""
import argparse
import json
import time

from mmsbam.analysis.bootmae_comparison import (do_run, render_markdown,
                                                summarize)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--lr0-seeds', nargs='*', type=int, default=[0])
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--images', type=int, default=12800,
                        help='training images per epoch (0: all 60,000)')
    parser.add_argument('--linear-epochs', type=int, default=2)
    parser.add_argument('--eval-images', type=int, default=0,
                        help='first N images of each split for k-NN and of '
                        'the training split for the probe (0: all)')
    parser.add_argument('--work-dir', default='work_dirs/bootmae_comparison')
    parser.add_argument('--out', help='JSON with every run and the summary')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    pairs = [[(arm, s) for arm in ('bootmae', 'bootmae-sbam')]
             for s in args.seeds]
    lr0 = [(arm, s) for s in args.lr0_seeds
           for arm in ('bootmae-lr0', 'bootmae-sbam-lr0')]
    plan = pairs[0] + lr0 + sum(pairs[1:], [])  # first pair, its LR-0 runs
    runs = []
    for arm, seed in plan:  # seed-major: a first full pair comes early
        start = time.time()
        runs.append(do_run(arm, seed, args.work_dir, args.epochs,
                           args.images, args.linear_epochs,
                           args.eval_images))
        r = runs[-1]
        print(f'{arm} seed {seed}: loss {r["loss_first"]:.3f} -> '
              f'{r["loss_last"]:.3f}'
              + (f', k-NN cls/avg {r["knn_cls"]:.2f}/{r["knn_avg"]:.2f}, '
                 f'linear {r["linear"]:.2f}' if 'linear' in r else '')
              + f' ({time.time() - start:.0f} s)', flush=True)
        summary = summarize(runs)
        if args.out:  # after every run, so a partial result is kept
            with open(args.out, 'w') as f:
                json.dump(dict(args=vars(args), runs=runs, summary=summary),
                          f, indent=1)
    print(render_markdown(summarize(runs)))


if __name__ == '__main__':
    main()
