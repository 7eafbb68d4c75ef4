"""Save a PNG of a few images per class of a registered dataset.

Builds ``--type`` from MMPretrain's ``DATASETS`` (with ``mmsbam``'s
datasets registered), takes the first ``--per-class`` images of each class
and draws them, one row per class, outlining the data info's
``garment_box`` when it has one (``ClutteredFashionMNIST``).

Example:
    .venv/bin/python tools/visualization/dataset_examples.py \\
        --type ClutteredFashionMNIST --test --out docs/cluttered_fmnist.png
"""
import argparse

import numpy as np
from mmengine.config import DictAction
from PIL import Image

from mmpretrain.registry import DATASETS
from mmpretrain.utils import register_all_modules

import mmsbam  # noqa: F401  (registers ClutteredFashionMNIST)
from mmsbam.analysis.dataset_examples import (draw_examples_grid,
                                              examples_per_class)


def parse_args() -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--type', default='ClutteredFashionMNIST',
                        help='registered dataset type')
    parser.add_argument('--data-root', default='data/fashion_mnist')
    parser.add_argument('--test', action='store_true',
                        help='the test split (test_mode=True)')
    parser.add_argument('--per-class', type=int, default=6)
    parser.add_argument('--options', nargs='+', action=DictAction,
                        default={}, help='more dataset arguments, e.g. '
                        'canvas=64 seed=1 num_fragments=6')
    parser.add_argument('--out', required=True, help='PNG to write')
    return parser.parse_args()


def main() -> None:
    """Build the dataset, pick the images, draw and save them."""
    args = parse_args()
    register_all_modules(init_default_scope=False)
    dataset = DATASETS.build(
        dict(type=args.type, data_root=args.data_root, test_mode=args.test,
             pipeline=[], **args.options))
    labels = np.array([int(dataset.get_data_info(i)['gt_label'])
                       for i in range(len(dataset))])
    picks = examples_per_class(labels, args.per_class)
    infos = [[dataset.get_data_info(int(i)) for i in row] for row in picks]
    images = np.array([[info['img'] for info in row] for row in infos])
    boxes = (np.array([[info['garment_box'] for info in row]
                       for row in infos])
             if 'garment_box' in infos[0][0] else None)
    classes = dataset.metainfo['classes']
    split = 'test' if args.test else 'train'
    options = ', '.join(f'{k}={v}' for k, v in args.options.items())
    title = f'{args.type} ({split} split{", " + options if options else ""})'
    Image.fromarray(draw_examples_grid(
        images, boxes, [classes[c] for c in np.unique(labels)],
        title)).save(args.out)
    print(f'{title}: {picks.size} images -> {args.out}')


if __name__ == '__main__':
    main()
