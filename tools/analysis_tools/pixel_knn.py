"""k-NN top-1 accuracy on the raw pixels of a registered dataset.

The reference that needs no network: each image flattened and
L2-normalised, weighted k-NN (as ``knn_eval.py --pixels``) on the first
``--num-train`` train and ``--num-test`` test images of ``--type``.

Example:
    .venv/bin/python tools/analysis_tools/pixel_knn.py --type FashionMNIST \\
        --num-train 10000 --num-test 2000
    .venv/bin/python tools/analysis_tools/pixel_knn.py \\
        --type ClutteredFashionMNIST --num-train 10000 --num-test 2000
"""
import argparse
import time

from mmengine.config import DictAction
from mmengine.logging import MMLogger

from mmpretrain.utils import register_all_modules

import mmsbam  # noqa: F401  (registers ClutteredFashionMNIST)
from mmsbam.evaluation.knn import pixel_knn_top1


def parse_args() -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--type', default='ClutteredFashionMNIST',
                        help='registered dataset type')
    parser.add_argument('--data-root', default='data/fashion_mnist')
    parser.add_argument('--options', nargs='+', action=DictAction,
                        default={}, help='more dataset arguments, e.g. '
                        'canvas=64 seed=1 num_fragments=6')
    parser.add_argument('--num-train', type=int,
                        help='first this many train images (default: all)')
    parser.add_argument('--num-test', type=int,
                        help='first this many test images (default: all)')
    parser.add_argument('--k', type=int, nargs='+', default=[20])
    parser.add_argument('--temperature', type=float, default=0.07)
    return parser.parse_args()


def main() -> None:
    """Print the raw-pixel k-NN accuracies."""
    args = parse_args()
    register_all_modules(init_default_scope=False)
    MMLogger.get_instance('mmsbam-knn', log_level='WARNING')
    start = time.time()
    accuracy = pixel_knn_top1(
        dict(type=args.type, data_root=args.data_root, **args.options),
        args.num_train, args.num_test, args.k, args.temperature)
    options = ''.join(f', {k}={v}' for k, v in args.options.items())
    for k, acc in accuracy.items():
        print(f'{args.type}{options}: raw-pixel k-NN top-1 (k={k}, '
              f'T={args.temperature}, train {args.num_train or "all"}, test '
              f'{args.num_test or "all"}): {acc:.2f}%  '
              f'[{time.time() - start:.0f}s]')


if __name__ == '__main__':
    main()
