"""What do the masks hide on Fashion-MNIST: garment or background?

The paper's argument for SBAM is that random masking hides mostly easy
background, while salience-based masking hides the tokens that matter. On
Fashion-MNIST "what matters" has a simple, checkable proxy: a patch is
*garment* (foreground) if its mean raw intensity exceeds ``--fg-threshold``
(0..255), otherwise *background* (the black surround). This script measures,
for the demo ViT with initial or trained weights:

* ``fg_tokens``: fraction of all patches that are garment;
* ``auc``: probability that a random garment patch has higher salience ``ŝ``
  than a random background patch of the same image (0.5: salience ignores
  the garment; 1: every garment patch outranks every background patch;
  below 0.5: salience prefers the background), averaged over images;
* ``salience_fg`` / ``salience_bg``: mean ``ŝ`` on garment / background;
* per masking (``random`` = MAE, ``sbm``, ``sbam`` = SBM + per-image AMR),
  ``masked_fg``: share of the masked patches that are garment, and
  ``fg_hidden``: share of the garment patches that are masked;
* ``row_peak``: mean over tokens of the largest softmax weight of its
  row of ``softmax(X Xᵀ / τ)`` (embedding source): near 1, every token
  attends almost only to one token (usually itself) and the column sums
  ``s_j`` count "nearest neighbour of" rather than measure content;
* ``amr_area_corr``: Pearson correlation, over images, between AMR's ratio
  and the garment area (AMR claims: more content, more masking).

All maskings use the same seeded noise, so differences come from the
salience alone. Used in ``docs/results.md`` to explain the ratio sweep.

Example:
    .venv/bin/python tools/benchmark/mask_content.py \\
        --checkpoints init work_dirs/ratio_sweep/mae_r0.75_s0/pretrain/epoch_3.pth
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from salience_stats import (build_backbone, compute_salience,  # noqa: E402
                            load_fashion_mnist, patch_tokens,
                            FMNIST_MEAN, FMNIST_STD)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--checkpoints', nargs='+', default=['init'],
        help="checkpoints of the demo model; 'init' = initial weights")
    parser.add_argument('--ratio', type=float, default=0.75)
    parser.add_argument('--noise-scale', type=float, default=0.5)
    parser.add_argument('--temperatures', nargs='+', type=float,
                        default=[1.0])
    parser.add_argument('--sources', nargs='+', default=['embedding'],
                        choices=('embedding', 'attention'))
    parser.add_argument('--ratio-var', type=float, default=0.1)
    parser.add_argument('--delta', type=float, default=0.2)
    parser.add_argument('--fg-threshold', type=float, default=13.0,
                        help='garment patch: mean raw intensity above this')
    parser.add_argument('--num-images', type=int, default=2000)
    parser.add_argument('--fmnist-root',
                        default='/usr/share/datasets/fashion-mnist')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='optional JSON file of all numbers')
    args = parser.parse_args(argv)
    if not 0 < args.ratio < 1:
        parser.error(f'--ratio must be in (0, 1), got {args.ratio}')
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    return args


def foreground_patches(images: Tensor, patch: int, threshold: float) -> Tensor:
    """(N, L) bool: patches whose mean raw intensity exceeds ``threshold``.

    Args:
        images (Tensor): Normalised images (N, 1, H, W) as the model sees
            them (``(raw - FMNIST_MEAN) / FMNIST_STD``).
    """
    raw = images * FMNIST_STD + FMNIST_MEAN
    means = torch.nn.functional.avg_pool2d(raw, patch)  # (N, 1, h, w)
    return means.flatten(1) > threshold


def salience_auc(salience: Tensor, fg: Tensor) -> Tensor:
    """Per image, P(ŝ of a garment patch > ŝ of a background patch).

    Ties count one half (Mann-Whitney). Images without garment or without
    background patches give NaN and are left out of the mean by the caller.
    """
    diff = salience.unsqueeze(2) - salience.unsqueeze(1)  # (N, L, L): i - j
    wins = (diff > 0).float() + 0.5 * (diff == 0).float()
    pair = (fg.unsqueeze(2) & ~fg.unsqueeze(1)).float()  # i fg, j bg
    count = pair.sum(dim=(1, 2))
    return (wins * pair).sum(dim=(1, 2)) / count.where(
        count > 0, torch.full_like(count, float('nan')))


@torch.no_grad()
def row_peak(model: torch.nn.Module, images: Tensor,
             temperature: float) -> float:
    """Mean largest weight of a row of ``softmax(X Xᵀ / τ)``."""
    peaks = []
    for chunk in images.split(256):
        x = patch_tokens(model, chunk)
        logits = torch.bmm(x, x.transpose(1, 2)) / temperature
        peaks.append(logits.softmax(-1).amax(-1).mean(1))
    return float(torch.cat(peaks).mean())


def masked_content(mask: Tensor, fg: Tensor) -> Dict[str, float]:
    """Share of masked patches on garment and share of garment masked."""
    mask = mask.bool()
    fg_masked = (mask & fg).sum(1).float()
    return dict(
        masked_fg=float((fg_masked / mask.sum(1).clamp(min=1)).mean()),
        fg_hidden=float((fg_masked / fg.sum(1).clamp(min=1)).mean()))


def measure(salience: Tensor, fg: Tensor, args) -> Dict[str, object]:
    """All numbers of one (checkpoint, source, temperature)."""
    from mmsbam.amr import adaptive_mask_ratio
    from mmsbam.masking import random_masking, salience_guided_masking

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(args.seed)

    auc = salience_auc(salience, fg)
    ratios = adaptive_mask_ratio(salience, args.ratio, args.ratio_var,
                                 args.delta)
    area = fg.float().mean(1)
    maskings = dict(
        random=random_masking(salience, args.ratio, gen()),
        sbm=salience_guided_masking(salience, args.ratio, args.noise_scale,
                                    gen()),
        sbam=salience_guided_masking(salience, ratios, args.noise_scale,
                                     gen()))
    corr = np.corrcoef(ratios.numpy(), area.numpy())[0, 1] if float(
        ratios.std()) > 0 else float('nan')
    return dict(
        fg_tokens=float(area.mean()),
        auc=float(auc[~auc.isnan()].mean()),
        salience_fg=float(salience[fg].mean()),
        salience_bg=float(salience[~fg].mean()),
        amr_ratio_mean=float(ratios.mean()),
        amr_ratio_std=float(ratios.std()),
        amr_area_corr=float(corr),
        maskings={k: masked_content(m.mask, fg) for k, m in maskings.items()})


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    images = load_fashion_mnist(args.fmnist_root, 't10k', args.num_images)
    rows = []
    for ckpt in args.checkpoints:
        for temperature in args.temperatures:
            model = build_backbone(
                'fmnist', args.seed, temperature,
                checkpoint=None if ckpt == 'init' else ckpt)
            fg = foreground_patches(images, model.patch_size,
                                    args.fg_threshold)
            for source in args.sources:
                salience = compute_salience(model, images, source, 256)
                row = dict(checkpoint=ckpt, source=source,
                           temperature=temperature,
                           row_peak=row_peak(model, images, temperature)
                           if source == 'embedding' else None,
                           **measure(salience, fg, args))
                rows.append(row)
    print(f'{len(images)} test images, ratio {args.ratio}, noise '
          f'{args.noise_scale}, AMR ratio_var {args.ratio_var} delta '
          f'{args.delta}, garment patch: mean > {args.fg_threshold}/255; '
          f'garment share of patches {rows[0]["fg_tokens"]:.3f}')
    head = ('| checkpoint | source | τ | row peak | AUC ŝ garment>bg | ŝ garment | ŝ bg '
            '| masked on garment: random / SBM / SBAM | garment hidden: '
            'random / SBM / SBAM | AMR ratio mean ± std | corr(ratio, '
            'area) |')
    print(head)
    print('|' + '---|' * (head.count('|') - 1))
    for r in rows:
        m = r['maskings']
        print(f"| {r['checkpoint']} | {r['source']} | {r['temperature']:g} | "
              + ('–' if r['row_peak'] is None else f"{r['row_peak']:.2f}")
              + f" | {r['auc']:.3f} | {r['salience_fg']:.3f} "
              f"| {r['salience_bg']:.3f} | "
              + ' / '.join(f"{m[k]['masked_fg']:.3f}"
                           for k in ('random', 'sbm', 'sbam')) + ' | '
              + ' / '.join(f"{m[k]['fg_hidden']:.3f}"
                           for k in ('random', 'sbm', 'sbam'))
              + f" | {r['amr_ratio_mean']:.3f} ± {r['amr_ratio_std']:.3f} "
              f"| {r['amr_area_corr']:.2f} |")
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
