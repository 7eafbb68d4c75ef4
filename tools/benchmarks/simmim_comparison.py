"""SimMIM with random masks vs SimMIM + SBAM on Fashion-MNIST: same
schedule, two masking ratios, several seeds; k-NN and linear probe of the
frozen Swin, and the garment share of what each arm masks. Resumable:
finished runs are read back from their result.json, an interrupted
pre-training resumes.

Example:
    python tools/benchmarks/simmim_comparison.py --ratios 0.4 0.6 \\
        --seeds 0 1 --epochs 3 --work-dir work_dirs/simmim_comparison \\
        --out docs/results_simmim.json
"""
import argparse
import json
import time

from mmsbam.analysis.simmim_comparison import (ARMS, do_run,
                                               render_markdown, summarize)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arms', nargs='+', choices=list(ARMS),
                        default=list(ARMS))
    parser.add_argument('--ratios', nargs='+', type=float, default=[0.4, 0.6])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--images', type=int, default=0,
                        help='training images per epoch (0: all 60,000)')
    parser.add_argument('--linear-epochs', type=int, default=2)
    parser.add_argument('--work-dir', default='work_dirs/simmim_comparison')
    parser.add_argument('--out', help='JSON with every run and the summary')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runs = []
    for seed in args.seeds:  # seed-major: a first full set comes early
        for ratio in args.ratios:
            for arm in args.arms:
                start = time.time()
                r = do_run(arm, ratio, seed, args.work_dir, args.epochs,
                           args.images, args.linear_epochs)
                runs.append(r)
                print(f'{arm} ratio {ratio} seed {seed}: k-NN '
                      f'{r["knn"]:.2f}, linear {r["linear"]:.2f}, masked '
                      f'garment share {r["masked_fg"]:.3f} '
                      f'({time.time() - start:.0f} s)', flush=True)
    summary = summarize(runs)
    print(render_markdown(summary))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), runs=runs, summary=summary), f,
                      indent=1)


if __name__ == '__main__':
    main()
