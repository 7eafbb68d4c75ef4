"""k-NN top-1 accuracy of a pre-trained encoder on its dataset's test split.

Builds the model of a pre-training CONFIG, loads CKPT (``--init`` evaluates
the initial weights instead, as a reference), embeds the train and test
splits of the config's training dataset with the frozen backbone, and
prints weighted k-NN top-1 accuracy.

Example:
    python tools/analysis_tools/knn_eval.py \
        configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py \
        work_dirs/sbam_vit-tiny-p4_1xb256-5e_fmnist/epoch_5.pth
"""
import argparse
import json
import time

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

from mmpretrain.utils import register_all_modules

from mmsbam.analysis.models import load_config, load_weights
from mmsbam.compat import strip_collate_scope
from mmsbam.evaluation.knn import (build_encoder_model, extract_features,
                                   knn_top1, split_loader)


def parse_args() -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='pre-training config')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint to test')
    parser.add_argument('--init', action='store_true',
                        help='evaluate the initial weights (no checkpoint)')
    parser.add_argument('--pixels', action='store_true',
                        help='reference without a network: k-NN on the '
                        'raw pixels (no checkpoint)')
    parser.add_argument('--k', type=int, nargs='+', default=[20])
    parser.add_argument('--temperature', type=float, default=0.07)
    parser.add_argument('--feature', choices=['avg', 'cls'], default='avg')
    parser.add_argument('--batch-size', type=int, default=500)
    parser.add_argument('--seed', type=int, default=0,
                        help='seed for --init weights')
    parser.add_argument('--out', help='write the accuracies to this JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if bool(args.checkpoint) + args.init + args.pixels != 1:
        parser.error('give exactly one of CHECKPOINT, --init, --pixels')
    return args


def main() -> None:
    """Embed both splits and print the k-NN accuracies."""
    args = parse_args()
    register_all_modules()
    cfg = load_config(args.config, args.cfg_options)
    strip_collate_scope(cfg)
    # extract_features logs its progress to the current logger
    MMLogger.get_instance('mmsbam-knn', log_level='INFO')
    torch.manual_seed(args.seed)
    model = None if args.pixels else build_encoder_model(cfg)
    feature = 'pixels' if args.pixels else args.feature
    if args.pixels:
        source = 'raw pixels, no network'
    elif args.init:
        model.init_weights()
        source = f'initial weights (seed {args.seed})'
    else:
        # whole model or bare backbone; every backbone tensor must fit
        load_weights(model, args.checkpoint, strict=True)
        source = args.checkpoint
    start = time.time()
    train = extract_features(model, split_loader(cfg, False, args.batch_size),
                             feature)
    test = extract_features(model, split_loader(cfg, True, args.batch_size),
                            feature)
    accuracy = knn_top1(train, test, args.k, args.temperature)
    for k, acc in accuracy.items():
        print(f'k-NN top-1 (k={k}, T={args.temperature}, {feature} '
              f'features, {len(test[1])} test images): {acc:.2f}%  '
              f'[{source}; {time.time() - start:.0f}s]')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(source=source, feature=feature,
                           temperature=args.temperature,
                           top1={str(k): v for k, v in accuracy.items()}),
                      f, indent=2)


if __name__ == '__main__':
    main()
