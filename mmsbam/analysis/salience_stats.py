"""Salience distributions on real images and the AMR settings they imply.

AMR (``SBAM.md`` section 3) sets each image's masking ratio from the
fraction ``y_b`` of its tokens whose normalized salience exceeds ``delta``.
It only adapts if ``y_b`` varies between images, and only keeps the mean
ratio near ``r_base`` if ``y_b`` averages about 0.5. The functions below
measure ``ŝ`` for the backbones of ``tools/analysis_tools/salience_stats.py``
and ``mask_content.py`` and pick ``delta`` from it.
"""
import copy
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..masking import (SalienceMasker, adaptive_mask_ratio,
                       num_visible_tokens, salient_fraction)
from .images import (IMAGENET_MEAN, IMAGENET_STD, normalize,
                     random_resized_crop, resize_center_crop, skimage_photos)
from .models import build_model, load_weights

__all__ = [
    'BACKBONES', 'QUANTILES', 'build_backbone', 'loaded_message',
    'salience_masker', 'compute_salience', 'photo_views', 'padding_cost',
    'summarise', 'recommend', 'recommend_joint'
]

#: The backbone of each setting: ViT-B/16 at 224 px for the photographs,
#: the demo ViT of ``configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py``
#: (its FFN width matches the config so that its checkpoints load).
BACKBONES = {
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
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def build_backbone(setting: str,
                   seed: int,
                   checkpoint: Optional[str] = None
                   ) -> Tuple[nn.Module, Optional[dict]]:
    """The ``SBAMViT`` of ``setting`` (a key of :data:`BACKBONES`) with its
    initial weights under ``seed``, then ``checkpoint``'s if given.

    Returns:
        tuple: The backbone (eval mode) and what
        :func:`~mmsbam.analysis.models.load_weights` reported (None without
        a checkpoint).
    """
    backbone = build_model(copy.deepcopy(BACKBONES[setting]), seed)
    info = load_weights(backbone, checkpoint) if checkpoint else None
    return backbone, info


def loaded_message(path: str, info: dict) -> str:
    """One line on a loaded backbone checkpoint."""
    missing = info['missing']
    return (f'loaded {path}: {info["loaded"]}/{info["total"]} backbone '
            'tensors' + (f', missing e.g. {missing[:3]}' if missing else ''))


def salience_masker(backbone: nn.Module,
                    source: str,
                    temperature: float = 1.0,
                    salience_layer: int = 0) -> SalienceMasker:
    """A :class:`SalienceMasker` with ``backbone``'s mask ratio and the
    given salience settings (checked against its encoder depth)."""
    masker = SalienceMasker(
        backbone.masker.mask_ratio,
        salience_source=source,
        temperature=temperature,
        salience_layer=salience_layer)
    masker.check_layers(len(backbone.layers))
    return masker


@torch.no_grad()
def compute_salience(backbone: nn.Module,
                     images: Tensor,
                     masker: SalienceMasker,
                     batch_size: int = 256) -> Tensor:
    """``ŝ`` (N, L) of normalized images (N, C, H, W) as ``masker`` scores
    ``backbone``'s patch tokens (what SBAMViT's forward feeds it)."""
    out = [
        masker.salience(backbone.patch_tokens(chunk), layers=backbone.layers)
        for chunk in images.split(batch_size)
    ]
    return torch.cat(out)


def photo_views(size: int = 224,
                crops: int = 0,
                seed: int = 0) -> Dict[str, Tuple[Tensor, List[str]]]:
    """The colour photographs of ``skimage.data`` as normalized
    (N, 3, size, size) (ImageNet mean/std).

    Returns:
        dict: ``{'photos': (centre crops, names)}`` and, if ``crops > 0``,
        ``{'photos-rrc': (random resized crops, names)}``: ``crops`` per
        photograph, drawn with ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    centre, rrc, names, rrc_names = [], [], [], []
    for name, img in skimage_photos():
        centre.append(resize_center_crop(img, size))
        names.append(name)
        for k in range(crops):
            rrc.append(random_resized_crop(img, size, rng))
            rrc_names.append(f'{name}#{k}')
    if not centre:
        raise RuntimeError('no colour photograph found in skimage.data')
    out = {'photos': (normalize(np.stack(centre), IMAGENET_MEAN,
                                IMAGENET_STD), names)}
    if crops > 0:
        out['photos-rrc'] = (normalize(np.stack(rrc), IMAGENET_MEAN,
                                       IMAGENET_STD), rrc_names)
    return out


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
    """All statistics of one (setting, source) pair: quantiles of ``ŝ``,
    and per ``delta`` the distribution of ``y_b`` and, per ``ratio_var``,
    of the AMR ratios with their padding cost."""
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
