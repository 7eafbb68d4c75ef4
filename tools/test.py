"""Evaluate a checkpoint with MMEngine's Runner, as MMPretrain's
``tools/test.py`` does.

Example:
    python tools/test.py configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py \
        work_dirs/vit-tiny-p4_linear-10e_fmnist/epoch_10.pth
"""
import argparse

from mmsbam.engine.launch import (add_common_args, apply_device_policy,
                           load_config, run)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model (mmsbam)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the metrics to this pickle/JSON')
    parser.add_argument('--amp', action='store_true',
                        help='test with automatic mixed precision')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    apply_device_policy(cfg, no_amp=args.no_amp)
    if cfg.get('test_dataloader') is None:
        raise SystemExit(
            f'{args.config} has no test_dataloader: tools/test.py evaluates '
            'classification configs (linear probe, fine-tune); for a '
            'pre-training config use tools/analysis_tools/knn_eval.py')
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg = dict(cfg.get('test_cfg') or {}, fp16=True)
    if args.out:
        cfg.test_evaluator = list(cfg.test_evaluator) if isinstance(
            cfg.test_evaluator, (list, tuple)) else [cfg.test_evaluator]
        cfg.test_evaluator.append(dict(type='DumpResults', out_file_path=args.out))
    run(cfg, train=False)

if __name__ == '__main__':
    main()
