"""Measure SBAM salience on real images to choose AMR's ``delta``/``ratio_var``.

AMR (``SBAM.md`` section 3) sets each image's masking ratio from the fraction
of its tokens whose normalised salience exceeds a threshold::

    y_b = |{j : ŝ_bj > δ}| / L
    r_b = r_base - r_var + 2 * r_var * y_b

AMR only *adapts* if ``y_b`` varies between images, and it only keeps the
mean ratio near ``r_base`` if ``y_b`` averages about 0.5. Both depend on the
distribution of ``ŝ``, which depends on the model, its weights and the data.
This script measures that distribution on two settings:

- ``photos``: ViT-B/16 at 224 px on the colour photographs shipped with
  ``skimage.data`` (short side resized to 224, PIL bicubic, and centre-cropped, plus
  ``--crops`` MAE-style random resized crops per photograph, normalised with
  the ImageNet mean/std of MMPretrain's data preprocessor).
- ``fmnist``: the tiny demo ViT of
  ``configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py`` (64 dims, 4 layers,
  FFN 256, 28 px, 4 px patches, one channel) on Fashion-MNIST images read
  from its idx files (raw or ``.gz``). The FFN width does not touch either
  salience source at ``salience_layer=0``; it matches the config so that
  its checkpoints load.

Weights are the ones a user starts from (``init_weights()`` under a fixed
seed) unless ``--checkpoint`` points at trained ones. For every salience
source it prints quantiles of ``ŝ``, the between-image distribution of ``y_b``
for each candidate ``δ``, the resulting per-image ratios for each candidate
``r_var`` (with the encoder padding cost of per-sample mode), and the ``δ``
that maximises the between-image std of ``y_b`` while keeping its mean near
0.5.

The salience of each source is computed by a ``SalienceMasker`` with that
source on the backbone's patch tokens, as ``SBAMViT``'s forward does; the
statistics live in :mod:`mmsbam.analysis.salience_stats`.

Example:
    .venv/bin/python tools/analysis_tools/salience_stats.py \\
        --out work_dirs/salience.json
    .venv/bin/python tools/analysis_tools/salience_stats.py --settings fmnist \\
        --checkpoint work_dirs/mae_fmnist/epoch_10.pth
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence

from torch import Tensor

from mmsbam.analysis.images import (FMNIST_FALLBACK_ROOT, FMNIST_MEAN,
                                    FMNIST_STD, fashion_mnist, normalize)
from mmsbam.analysis.salience_stats import (build_backbone, compute_salience,
                                            loaded_message, photo_views,
                                            recommend, recommend_joint,
                                            salience_masker, summarise)

SETTINGS = ('photos', 'fmnist')
SOURCES = ('embedding', 'attention')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Measure SBAM salience distributions and the AMR ratios '
        'they give, to choose delta and ratio_var.')
    add = parser.add_argument
    add('--settings', nargs='+', choices=SETTINGS, default=list(SETTINGS),
        help='Which model/data settings to measure.')
    add('--sources', nargs='+', choices=SOURCES, default=list(SOURCES),
        help='Salience sources to measure.')
    add('--checkpoint',
        help='Trained weights (MMEngine checkpoint of an MAE/SBAM model or '
        'of a bare backbone) loaded after init_weights(). Needs exactly one '
        'setting in --settings.')
    add('--seed', type=int, default=0, help='Seed of init and crops.')
    add('--temperature', type=float, default=1.0,
        help='Salience softmax temperature (SBAMViT default 1.0).')
    add('--salience-layer', type=int, default=0,
        help='Encoder block used by the attention source.')
    add('--crops', type=int, default=8,
        help='Random resized crops per photograph (scale 0.2-1, as MAE '
        'pre-training), reported as setting "photos-rrc"; 0 disables.')
    add('--fmnist-root', default=FMNIST_FALLBACK_ROOT,
        help='Folder with the Fashion-MNIST idx files (raw or .gz).')
    add('--fmnist-split', choices=('train', 't10k'), default='t10k',
        help='Fashion-MNIST split to read.')
    add('--num-fmnist', type=int, default=2000,
        help='Number of Fashion-MNIST images (first N of the split).')
    add('--deltas', nargs='+', type=float,
        default=[round(0.1 * i, 1) for i in range(1, 10)],
        help='Candidate thresholds delta.')
    add('--ratio-vars', nargs='+', type=float, default=[0.05, 0.1, 0.15],
        help='Candidate half-ranges ratio_var.')
    add('--base-ratio', type=float, default=0.75,
        help='r_base (mask_ratio).')
    add('--mean-tol', type=float, default=0.15,
        help='A delta qualifies if |mean(y_b) - 0.5| <= mean-tol.')
    add('--batch-size', type=int, default=64,
        help='Batch size for the padding-cost estimate and for inference.')
    add('--out', help='Optional JSON file for all numbers.')
    args = parser.parse_args(argv)
    if args.checkpoint and len(args.settings) != 1:
        parser.error('--checkpoint belongs to one architecture: pass exactly '
                     'one of --settings photos / --settings fmnist')
    if any(not 0 <= d <= 1 for d in args.deltas):
        parser.error('--deltas must lie in [0, 1]')
    return args


# ---------------------------------------------------------------- output ----
def print_report(key: str, stats: dict, rec: dict) -> None:
    """Plain-text tables of one (setting, source) pair."""
    q = stats['quantiles']
    print(f'\n=== {key}: {stats["num_images"]} images x '
          f'{stats["num_tokens"]} tokens ===')
    print('ŝ quantiles (pooled): ' + '  '.join(f'{k}={v:.3f}'
                                               for k, v in q.items()) +
          f'  (ŝ == 0: {stats["zero_fraction"]:.1%})')
    rvs = list(next(iter(stats['deltas'].values()))['ratio_vars'])
    head = (f'{"delta":>5} | {"y mean":>6} {"std":>5} {"min":>5} {"max":>5} '
            f'{"p5":>5} {"p95":>5} |' +
            ''.join(f' r_var={rv:<5} r mean [p5, p95] std pad |'
                    for rv in rvs))
    print(head)
    print('-' * len(head))
    for d, e in stats['deltas'].items():
        y = e['y']
        line = (f'{float(d):5.2f} | {y["mean"]:6.3f} {y["std"]:5.3f} '
                f'{y["min"]:5.3f} {y["max"]:5.3f} {y["p5"]:5.3f} '
                f'{y["p95"]:5.3f} |')
        for rv in rvs:
            r = e['ratio_vars'][rv]
            line += (f' {r["mean"]:.3f} [{r["p5"]:.3f}, {r["p95"]:.3f}] '
                     f'{r["std"]:.3f} {r["pad"]:4.0%} |')
        print(line)
    flag = '' if rec['qualified'] else '  [no delta keeps mean y near 0.5]'
    print(f'-> delta={rec["delta"]:g} (mean y {rec["y_mean"]:.3f}, '
          f'std y {rec["y_std"]:.3f}){flag}')


def load_views(setting: str, args: argparse.Namespace) -> Dict[str, Tensor]:
    """Normalized images of ``setting``, by view name."""
    if setting == 'photos':
        return {k: v[0] for k, v in photo_views(224, args.crops,
                                                 args.seed).items()}
    raw, _ = fashion_mnist(args.fmnist_root, args.fmnist_split,
                           args.num_fmnist)
    return {'fmnist': normalize(raw[..., None], [FMNIST_MEAN], [FMNIST_STD])}


def measure(args: argparse.Namespace) -> Dict[str, dict]:
    """Statistics of every (view, source) pair, printed as they come;
    returns ``{'stats': ..., 'recommendation': ...}`` keyed by pair."""
    results, recs = {}, {}
    for setting in args.settings:
        backbone, info = build_backbone(setting, args.seed, args.checkpoint)
        if info is not None:
            print(loaded_message(args.checkpoint, info))
        for view, x in load_views(setting, args).items():
            for source in args.sources:
                key = f'{view}/{source}'
                masker = salience_masker(backbone, source, args.temperature,
                                         args.salience_layer)
                sal = compute_salience(backbone, x, masker, args.batch_size)
                stats = summarise(sal, args.deltas, args.ratio_vars,
                                  args.base_ratio, args.batch_size, args.seed)
                results[key] = stats
                recs[key] = recommend(stats, args.mean_tol)
                print_report(key, stats, recs[key])
    return dict(stats=results, recommendation=recs)


def print_joint(results: Dict[str, dict], args: argparse.Namespace) -> dict:
    """Print and return one δ per source over all views."""
    joint = {}
    for source in args.sources:
        pairs = {k: v for k, v in results.items() if k.endswith('/' + source)}
        if len(pairs) > 1:
            joint[source] = recommend_joint(pairs, args.deltas, args.mean_tol)
            j = joint[source]
            flag = '' if j['qualified'] else ' [not within tol everywhere]'
            print(f'joint {source:9s}: delta={j["delta"]:g} (worst |mean y -'
                  f' 0.5| {j["worst_mean_dev"]:.3f}, smallest std y '
                  f'{j["min_y_std"]:.3f}){flag}')
    return joint


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Measure every selected setting and source; print and save."""
    args = parse_args(argv)
    start = time.time()
    out = measure(args)
    print(
        f'\nweights: {args.checkpoint or "init_weights(), seed %d" % args.seed}'
        f'; temperature={args.temperature}; base ratio {args.base_ratio}'
        f'; pad = padded encoder slots of per-sample AMR (max/mean visible'
        f' - 1) in batches of {args.batch_size}')
    print(f'selection: max std(y) s.t. |mean(y) - 0.5| <= {args.mean_tol}')
    joint = print_joint(out['stats'], args)
    print(f'done in {time.time() - start:.1f}s')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), **out, joint=joint), f, indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
