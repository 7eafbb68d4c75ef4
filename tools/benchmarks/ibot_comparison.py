"""iBoT vs iBoT + SBAM (teacher salience, column sum) vs iBoT + teacher
CLS-row salience (AttMask-style rows) on Fashion-MNIST: same schedule,
several seeds, teacher k-NN (CLS token) and linear probe, plus what the
teacher attends to and what each arm masks. Resumable: finished runs are
read back from their result.json, an interrupted pre-training resumes.

Example:
    python tools/benchmarks/ibot_comparison.py --epochs 3 --images 20000 \\
        --seeds 0 1 --work-dir work_dirs/ibot_comparison --out docs/results_ibot.json
"""
import argparse
import json
import time

from mmsbam.analysis.ibot_comparison import (ARMS, do_run, draw_arm_masks,
                                             render_markdown, summarize)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arms', nargs='+', choices=list(ARMS),
                        default=list(ARMS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--images', type=int, default=20000,
                        help='training images per epoch (0: all 60,000)')
    parser.add_argument('--linear-epochs', type=int, default=2)
    parser.add_argument('--work-dir', default='work_dirs/ibot_comparison')
    parser.add_argument('--out', help='JSON with every run and the summary')
    parser.add_argument('--picture',
                        help='PNG of the teacher salience and every arm\'s '
                        'masks (first seed)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runs = []
    for seed in args.seeds:  # seed-major: a first full set comes early
        for arm in args.arms:
            start = time.time()
            runs.append(do_run(arm, seed, args.work_dir, args.epochs,
                               args.images, args.linear_epochs))
            r = runs[-1]
            print(f'{arm} seed {seed}: k-NN {r["knn"]:.2f}, linear '
                  f'{r["linear"]:.2f}, AUC all/cls {r["auc_all"]:.3f}/'
                  f'{r["auc_cls"]:.3f} ({time.time() - start:.0f} s)',
                  flush=True)
    summary = summarize(runs)
    print(render_markdown(summary))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), runs=runs, summary=summary), f,
                      indent=1)
    if args.picture:
        print('picture:', draw_arm_masks(args.work_dir, args.picture,
                                         args.seeds[0]))


if __name__ == '__main__':
    main()
