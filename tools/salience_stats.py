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
  ``skimage.data`` (short side resized to 224 and centre-cropped, plus
  ``--crops`` MAE-style random resized crops per photograph, normalised with
  the ImageNet mean/std of MMPretrain's data preprocessor).
- ``fmnist``: the tiny demo ViT of
  ``configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py`` (64 dims, 4 layers,
  FFN 256, 28 px, 4 px patches, one channel) on Fashion-MNIST images read
  from the raw idx ``.gz`` files. The FFN width does not touch either
  salience source at ``salience_layer=0``; it matches the config so that
  its checkpoints load.

Weights are the ones a user starts from (``init_weights()`` under a fixed
seed) unless ``--checkpoint`` points at trained ones. For every salience
source it prints quantiles of ``ŝ``, the between-image distribution of ``y_b``
for each candidate ``δ``, the resulting per-image ratios for each candidate
``r_var`` (with the encoder padding cost of per-sample mode), and the ``δ``
that maximises the between-image std of ``y_b`` while keeping its mean near
0.5.

Example:
    .venv/bin/python tools/salience_stats.py --out work_dirs/salience.json
    .venv/bin/python tools/salience_stats.py --settings fmnist \\
        --checkpoint work_dirs/mae_fmnist/epoch_10.pth
"""
import argparse
import gzip
import json
import logging
import math
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, MMPretrain's preprocessor
IMAGENET_STD = (58.395, 57.12, 57.375)
FMNIST_MEAN = 72.94  # on 0..255
FMNIST_STD = 90.02
#: Colour photographs of ``skimage.data`` that ship with scikit-image (no
#: download). ``colorwheel`` and ``logo`` are synthetic and left out.
PHOTO_NAMES = ('astronaut', 'chelsea', 'coffee', 'rocket', 'stereo_motorcycle',
               'hubble_deep_field', 'immunohistochemistry', 'retina')
SETTINGS = ('photos', 'fmnist')
SOURCES = ('embedding', 'attention')
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

MODEL_CFGS = {
    'photos':
    dict(type='SBAMViT', arch='b', img_size=224, patch_size=16),
    'fmnist':
    dict(
        type='SBAMViT',
        arch=dict(
            embed_dims=64, num_layers=4, num_heads=4,
            feedforward_channels=256),
        img_size=28,
        patch_size=4,
        patch_cfg=dict(in_channels=1)),
}


def parse_args() -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Measure SBAM salience distributions and the AMR ratios '
        'they give, to choose delta and ratio_var.')
    parser.add_argument(
        '--settings',
        nargs='+',
        choices=SETTINGS,
        default=list(SETTINGS),
        help='Which model/data settings to measure.')
    parser.add_argument(
        '--sources',
        nargs='+',
        choices=SOURCES,
        default=list(SOURCES),
        help='Salience sources to measure.')
    parser.add_argument(
        '--checkpoint',
        help='Trained weights (MMEngine checkpoint of an MAE/SBAM model or '
        'of a bare backbone) loaded after init_weights(). Needs exactly one '
        'setting in --settings.')
    parser.add_argument(
        '--seed', type=int, default=0, help='Seed of init and crops.')
    parser.add_argument(
        '--temperature',
        type=float,
        default=1.0,
        help='Salience softmax temperature (SBAMViT default 1.0).')
    parser.add_argument(
        '--salience-layer',
        type=int,
        default=0,
        help='Encoder block used by the attention source.')
    parser.add_argument(
        '--crops',
        type=int,
        default=8,
        help='Random resized crops per photograph (scale 0.2-1, as MAE '
        'pre-training), reported as setting "photos-rrc"; 0 disables.')
    parser.add_argument(
        '--fmnist-root',
        default='/usr/share/datasets/fashion-mnist',
        help='Folder with the raw Fashion-MNIST idx .gz files.')
    parser.add_argument(
        '--fmnist-split',
        choices=('train', 't10k'),
        default='t10k',
        help='Fashion-MNIST split to read.')
    parser.add_argument(
        '--num-fmnist',
        type=int,
        default=2000,
        help='Number of Fashion-MNIST images (first N of the split).')
    parser.add_argument(
        '--deltas',
        nargs='+',
        type=float,
        default=[round(0.1 * i, 1) for i in range(1, 10)],
        help='Candidate thresholds delta.')
    parser.add_argument(
        '--ratio-vars',
        nargs='+',
        type=float,
        default=[0.05, 0.1, 0.15],
        help='Candidate half-ranges ratio_var.')
    parser.add_argument(
        '--base-ratio', type=float, default=0.75, help='r_base (mask_ratio).')
    parser.add_argument(
        '--mean-tol',
        type=float,
        default=0.15,
        help='A delta qualifies if |mean(y_b) - 0.5| <= mean-tol.')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=64,
        help='Batch size for the padding-cost estimate and for inference.')
    parser.add_argument('--out', help='Optional JSON file for all numbers.')
    args = parser.parse_args()
    if args.checkpoint and len(args.settings) != 1:
        parser.error('--checkpoint belongs to one architecture: pass exactly '
                     'one of --settings photos / --settings fmnist')
    if any(not 0 <= d <= 1 for d in args.deltas):
        parser.error('--deltas must lie in [0, 1]')
    return args


# ----------------------------------------------------------------- data ----
def _resize_short_side(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize (float, 0..255) so the short side equals ``size``."""
    from skimage.transform import resize
    h, w = img.shape[:2]
    scale = size / min(h, w)
    out_shape = (max(size, round(h * scale)), max(size, round(w * scale)))
    return resize(
        img, out_shape, order=3, preserve_range=True,
        anti_aliasing=True).clip(0, 255)


def _random_resized_crop(img: np.ndarray, size: int,
                         rng: np.random.Generator) -> np.ndarray:
    """``RandomResizedCrop(size, scale=(0.2, 1.0))`` as MAE pre-training."""
    from skimage.transform import resize
    h, w = img.shape[:2]
    area = h * w
    for _ in range(10):
        target = area * rng.uniform(0.2, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            crop = img[top:top + ch, left:left + cw]
            break
    else:  # fall back to a centre square
        s = min(h, w)
        crop = img[(h - s) // 2:(h - s) // 2 + s,
                   (w - s) // 2:(w - s) // 2 + s]
    crop = resize(
        crop, (size, size), order=3, preserve_range=True, anti_aliasing=True)
    return crop.clip(0, 255)


def load_photos(size: int = 224,
                crops: int = 0,
                seed: int = 0) -> Dict[str, Tuple[Tensor, List[str]]]:
    """Colour photographs of ``skimage.data`` as normalised (N, 3, H, W).

    Returns:
        dict: ``{'photos': (centre crops, names)}`` and, if ``crops > 0``,
        ``{'photos-rrc': (random resized crops, names)}``.
    """
    from skimage import data as skdata
    rng = np.random.default_rng(seed)
    centre, rrc, names, rrc_names = [], [], [], []
    for name in PHOTO_NAMES:
        loader = getattr(skdata, name, None)
        if loader is None:
            continue
        try:
            img = loader()
        except Exception:  # needs a download (pooch) on this install
            continue
        if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disp)
            img = img[0]
        if img.ndim != 3 or img.shape[2] < 3:
            continue
        img = img[..., :3].astype(np.float64)
        if img.max() <= 1.0:
            img = img * 255
        short = _resize_short_side(img, size)
        h, w = short.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        centre.append(short[top:top + size, left:left + size])
        names.append(name)
        for k in range(crops):
            rrc.append(_random_resized_crop(img, size, rng))
            rrc_names.append(f'{name}#{k}')
    if not centre:
        raise RuntimeError('no colour photograph found in skimage.data')

    def to_tensor(imgs: List[np.ndarray]) -> Tensor:
        x = torch.from_numpy(np.stack(imgs)).float().permute(0, 3, 1, 2)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    out = {'photos': (to_tensor(centre), names)}
    if crops > 0:
        out['photos-rrc'] = (to_tensor(rrc), rrc_names)
    return out


def load_fashion_mnist(root: str,
                       split: str = 't10k',
                       num: int = 2000) -> Tensor:
    """Read Fashion-MNIST idx images; return normalised (N, 1, 28, 28)."""
    path = osp.join(root, f'{split}-images-idx3-ubyte.gz')
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    magic, count, rows, cols = np.frombuffer(raw[:16], dtype='>i4')
    if magic != 2051:
        raise ValueError(f'{path} is not an idx3 image file (magic {magic})')
    imgs = np.frombuffer(raw, dtype=np.uint8, offset=16)
    imgs = imgs.reshape(count, rows, cols)[:num].astype(np.float32)
    x = torch.from_numpy(imgs.copy()).unsqueeze(1)
    return (x - FMNIST_MEAN) / FMNIST_STD


# ---------------------------------------------------------------- model ----
def build_backbone(setting: str,
                   seed: int,
                   temperature: float = 1.0,
                   salience_layer: int = 0,
                   checkpoint: Optional[str] = None) -> torch.nn.Module:
    """Build the ``SBAMViT`` of ``setting`` with initial or trained weights."""
    import mmsbam  # noqa: F401  (registers SBAMViT)
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules()
    # init_weights() logs one line per parameter; keep the tables readable.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(seed)
    cfg = dict(
        MODEL_CFGS[setting],
        temperature=temperature,
        salience_layer=salience_layer)
    model = MODELS.build(cfg)
    model.init_weights()
    if checkpoint:
        load_backbone_checkpoint(model, checkpoint)
    model.eval()  # VisionTransformer.train() does not return self
    return model


def load_backbone_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Load backbone weights from an MMEngine checkpoint.

    Keys of a whole MAE model (``backbone.*``, ``neck.*``, ``head.*``) or of
    a bare backbone are accepted. Raises if no key matches or a matching key
    has another shape (a checkpoint of a different architecture).
    """
    from mmengine.runner import CheckpointLoader
    from mmengine.runner.checkpoint import load_state_dict
    ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    state = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state.items()
    }
    if any(k.startswith('backbone.') for k in state):
        state = {
            k[len('backbone.'):]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
    own = model.state_dict()
    matched = [k for k in own if k in state]
    wrong = [
        f'{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
        for k in matched if state[k].shape != own[k].shape
    ]
    if not matched or wrong:
        raise RuntimeError(
            f'{path} does not fit the {type(model).__name__} '
            f'of this setting: {len(matched)} keys match' +
            (f', shape mismatches {wrong[:3]}' if wrong else ''))
    # what load_checkpoint does, minus its list of the neck/head keys
    load_state_dict(model, {k: state[k] for k in matched}, strict=False)
    missing = [k for k in own if k not in state]
    print(f'loaded {path}: {len(matched)}/{len(own)} backbone tensors' +
          (f', missing e.g. {missing[:3]}' if missing else ''))


def patch_tokens(model: torch.nn.Module, x: Tensor) -> Tensor:
    """Patch tokens (B, L, D) as ``SBAMViT.forward`` scores them: patch
    embedding plus position embedding, no class token."""
    return model.patch_embed(x)[0] + model.pos_embed[:, 1:, :]


@torch.no_grad()
def compute_salience(model: torch.nn.Module, x: Tensor, source: str,
                     batch_size: int) -> Tensor:
    """``ŝ`` (N, L) exactly as ``SBAMViT.forward`` feeds the mask generator."""
    previous = model.salience_source
    model.salience_source = source
    try:
        out = []
        for chunk in x.split(batch_size):
            out.append(model.salience(patch_tokens(model, chunk)))
    finally:
        model.salience_source = previous
    return torch.cat(out)


# ------------------------------------------------------------ statistics ----
def _dist(values: np.ndarray) -> Dict[str, float]:
    """Mean, std, min, max, 5 % and 95 % percentiles of a 1-D array."""
    return dict(
        mean=float(values.mean()),
        std=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
        p5=float(np.percentile(values, 5)),
        p95=float(np.percentile(values, 95)))


def padding_cost(ratios: Tensor, num_tokens: int, batch_size: int,
                 seed: int) -> float:
    """Fraction of padded encoder slots in per-sample AMR mode.

    Per-sample mode pads every image to the largest visible count ``K`` of
    its batch; this averages ``max_b K_b / mean_b K_b - 1`` over shuffled
    batches (one batch if there are fewer images than ``batch_size``). The
    cost of the *mean* shift of the ratio is visible in the ratio itself.
    """
    from mmsbam.masking import num_visible_tokens
    keep = num_visible_tokens(num_tokens, ratios.double(), len(ratios))
    perm = torch.randperm(
        len(keep), generator=torch.Generator().manual_seed(seed))
    batches = keep[perm].double().split(batch_size)
    if len(batches) > 1 and len(batches[-1]) < batch_size:
        batches = batches[:-1]
    return float(np.mean([float(b.max() / b.mean()) - 1 for b in batches]))


def summarise(salience: Tensor, deltas: Sequence[float],
              ratio_vars: Sequence[float], base_ratio: float, batch_size: int,
              seed: int) -> dict:
    """All statistics of one (setting, source) pair."""
    from mmsbam.amr import adaptive_mask_ratio, salient_fraction
    flat = salience.flatten().numpy()
    result = dict(
        num_images=int(salience.shape[0]),
        num_tokens=int(salience.shape[1]),
        quantiles={
            f'q{round(q * 100)}': float(np.quantile(flat, q))
            for q in QUANTILES
        },
        zero_fraction=float((flat == 0).mean()),
        deltas={})
    for delta in deltas:
        y = salient_fraction(salience, delta)
        entry = dict(y=_dist(y.numpy()), ratio_vars={})
        for ratio_var in ratio_vars:
            if not (0 < base_ratio - ratio_var and base_ratio + ratio_var < 1):
                continue
            r = adaptive_mask_ratio(salience, base_ratio, ratio_var, delta)
            entry['ratio_vars'][str(ratio_var)] = dict(
                _dist(r.numpy()),
                pad=padding_cost(r, salience.shape[1], batch_size, seed))
        result['deltas'][str(delta)] = entry
    return result


def recommend(stats: dict, mean_tol: float) -> dict:
    """δ with the largest std of ``y_b`` among those with mean near 0.5.

    If no δ has ``|mean(y) - 0.5| <= mean_tol``, the δ whose mean is closest
    to 0.5 is returned with ``qualified=False``.
    """
    rows = [(float(d), e['y']['mean'], e['y']['std'])
            for d, e in stats['deltas'].items()]
    ok = [r for r in rows if abs(r[1] - 0.5) <= mean_tol]
    if ok:
        best = max(ok, key=lambda r: r[2])
    else:
        best = min(rows, key=lambda r: abs(r[1] - 0.5))
    return dict(
        delta=best[0], y_mean=best[1], y_std=best[2], qualified=bool(ok))


def recommend_joint(per_key: Dict[str, dict], deltas: Sequence[float],
                    mean_tol: float) -> dict:
    """One δ for several (setting, source) pairs.

    Among δ whose mean ``y_b`` is within ``mean_tol`` of 0.5 in *every* pair,
    take the one with the largest smallest std; otherwise the δ with the
    smallest worst-case ``|mean - 0.5|``.
    """
    rows = []
    for delta in deltas:
        ys = [s['deltas'][str(delta)]['y'] for s in per_key.values()]
        worst_dev = max(abs(y['mean'] - 0.5) for y in ys)
        min_std = min(y['std'] for y in ys)
        rows.append((delta, worst_dev, min_std))
    ok = [r for r in rows if r[1] <= mean_tol]
    best = (
        max(ok, key=lambda r: r[2]) if ok else min(rows, key=lambda r: r[1]))
    return dict(
        delta=best[0],
        worst_mean_dev=best[1],
        min_y_std=best[2],
        qualified=bool(ok),
        pairs=sorted(per_key))


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


def main() -> None:
    """Measure every selected setting and source; print and save."""
    args = parse_args()
    start = time.time()
    results, recs = {}, {}
    for setting in args.settings:
        model = build_backbone(setting, args.seed, args.temperature,
                               args.salience_layer, args.checkpoint)
        if setting == 'photos':
            views = {
                k: v[0]
                for k, v in load_photos(224, args.crops, args.seed).items()
            }
        else:
            views = {
                'fmnist':
                load_fashion_mnist(args.fmnist_root, args.fmnist_split,
                                   args.num_fmnist)
            }
        for view, x in views.items():
            for source in args.sources:
                key = f'{view}/{source}'
                sal = compute_salience(model, x, source, args.batch_size)
                stats = summarise(sal, args.deltas, args.ratio_vars,
                                  args.base_ratio, args.batch_size, args.seed)
                results[key] = stats
                recs[key] = recommend(stats, args.mean_tol)
                print_report(key, stats, recs[key])
    print(
        f'\nweights: {args.checkpoint or "init_weights(), seed %d" % args.seed}'
        f'; temperature={args.temperature}; base ratio {args.base_ratio}'
        f'; pad = padded encoder slots of per-sample AMR (max/mean visible'
        f' - 1) in batches of {args.batch_size}')
    print(f'selection: max std(y) s.t. |mean(y) - 0.5| <= {args.mean_tol}')
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
    print(f'done in {time.time() - start:.1f}s')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(
                dict(
                    args=vars(args),
                    stats=results,
                    recommendation=recs,
                    joint=joint),
                f,
                indent=1)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
