"""Train with MMEngine's Runner, as MMPretrain's ``tools/train.py`` does.

Examples:
    python tools/train.py configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py
    python tools/train.py CONFIG --resume            # latest in work dir
    python tools/train.py CONFIG --resume CKPT --cfg-options train_cfg.max_epochs=10
    bash tools/dist_train.sh CONFIG 8                # 8 processes
"""
import argparse

from mmsbam.engine.launch import (add_common_args, apply_device_policy,
                           load_config, run)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (mmsbam)')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or without a value from the '
        'latest one in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper)')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by actual / base batch size')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args)
    apply_device_policy(cfg, amp=args.amp, no_amp=args.no_amp)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    run(cfg, train=True)

if __name__ == '__main__':
    main()
