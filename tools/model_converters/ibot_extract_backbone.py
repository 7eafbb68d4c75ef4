"""Extract the backbone of an iBOT checkpoint (the teacher's by default, as
iBoT evaluates it) for MMPretrain's linear / fine-tune configs and k-NN.

Example:
    python tools/model_converters/ibot_extract_backbone.py \\
        work_dirs/ibot_fmnist/epoch_5.pth work_dirs/ibot_fmnist/teacher.pth
    python tools/analysis_tools/knn_eval.py \\
        configs/fmnist/ibot_vit-tiny-p4_1xb128-5e_fmnist.py \\
        work_dirs/ibot_fmnist/teacher.pth
"""
import argparse

import torch

from mmsbam.models.ibot import ibot_backbone_state


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract the backbone of an iBOT checkpoint')
    parser.add_argument('checkpoint', help='iBOT checkpoint (MMEngine)')
    parser.add_argument('out', help='output checkpoint with backbone.* keys')
    parser.add_argument('--key', choices=('teacher', 'student'),
                        default='teacher', help='which network')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import mmsbam  # noqa: F401  (loads MMEngine checkpoints, torch >= 2.6)
    ckpt = torch.load(args.checkpoint, map_location='cpu')
    state = ibot_backbone_state(ckpt['state_dict'], args.key)
    meta = dict(ckpt.get('meta') or {}, ibot_backbone=args.key)
    torch.save(dict(state_dict=state, meta=meta), args.out)
    print(f'{args.key} backbone of {args.checkpoint}: {len(state)} tensors '
          f'-> {args.out}')


if __name__ == '__main__':
    main()
