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
    .venv/bin/python tools/analysis_tools/mask_content.py \\
        --checkpoints init work_dirs/ratio_sweep/mae_r0.75_s0/pretrain/epoch_3.pth
"""
import argparse
import json
from typing import List, Optional, Sequence, Tuple

from mmsbam.analysis.images import (FMNIST_MEAN, FMNIST_STD, fashion_mnist,
                                    normalize)
from mmsbam.analysis.mask_content import foreground_patches, measure, row_peak
from mmsbam.analysis.salience_stats import (build_backbone, compute_salience,
                                            loaded_message, salience_masker)


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


def measure_rows(args: argparse.Namespace) -> Tuple[List[dict], int]:
    """One row of numbers per (checkpoint, temperature, source), and the
    number of test images."""
    raw, _ = fashion_mnist(args.fmnist_root, 't10k', args.num_images)
    images = normalize(raw[..., None], [FMNIST_MEAN], [FMNIST_STD])
    rows = []
    for ckpt in args.checkpoints:
        checkpoint = None if ckpt == 'init' else ckpt
        backbone, info = build_backbone('fmnist', args.seed, checkpoint)
        if info is not None:
            print(loaded_message(checkpoint, info))
        fg = foreground_patches(images, backbone.patch_size,
                                args.fg_threshold)
        for temperature in args.temperatures:
            for source in args.sources:
                masker = salience_masker(backbone, source, temperature)
                salience = compute_salience(backbone, images, masker)
                peak = row_peak(backbone, images, temperature) \
                    if source == 'embedding' else None
                rows.append(dict(
                    checkpoint=ckpt, source=source, temperature=temperature,
                    row_peak=peak,
                    **measure(salience, fg, args.ratio, args.noise_scale,
                              args.ratio_var, args.delta, args.seed)))
    return rows, len(images)


def print_table(rows: List[dict], num_images: int,
                args: argparse.Namespace) -> None:
    """The rows as one Markdown table, after a line on the settings."""
    print(f'{num_images} test images, ratio {args.ratio}, noise '
          f'{args.noise_scale}, AMR ratio_var {args.ratio_var} delta '
          f'{args.delta}, garment patch: mean > {args.fg_threshold}/255; '
          f'garment share of patches {rows[0]["fg_tokens"]:.3f}')
    head = ('| checkpoint | source | τ | row peak | AUC ŝ garment>bg '
            '| ŝ garment | ŝ bg | masked on garment: random / SBM / SBAM '
            '| garment hidden: random / SBM / SBAM | AMR ratio mean ± std '
            '| corr(ratio, area) |')
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


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """Measure, print the table and optionally save the numbers as JSON."""
    args = parse_args(argv)
    rows, num_images = measure_rows(args)
    print_table(rows, num_images, args)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
