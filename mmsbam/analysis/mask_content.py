"""What the masks hide on Fashion-MNIST: garment or background.

A patch is *garment* (foreground) if its mean raw intensity exceeds a
threshold (0..255), otherwise *background* (the black surround). The
measures below compare the salience ``ŝ`` and the random, SBM and SBAM
(SBM + per-image AMR) maskings against that proxy of "what matters"; all
maskings use the same seeded noise, so differences come from the salience
alone. ``tools/analysis_tools/mask_content.py`` prints them.
"""
from typing import Dict

import numpy as np
import torch
from torch import Tensor, nn

from ..masking import adaptive_mask_ratio
from .images import FMNIST_MEAN, FMNIST_STD
from .maskings import seeded_maskings

__all__ = [
    'foreground_patches', 'salience_auc', 'row_peak', 'masked_content',
    'measure'
]


def foreground_patches(images: Tensor,
                       patch: int,
                       threshold: float,
                       mean: float = FMNIST_MEAN,
                       std: float = FMNIST_STD) -> Tensor:
    """(N, L) bool: patches whose mean raw intensity exceeds ``threshold``.

    Args:
        images (Tensor): Normalized images (N, 1, H, W) as the model sees
            them, ``(raw - mean) / std``.
        patch (int): Patch size in pixels.
        threshold (float): On the raw 0..255 scale.
        mean (float): Normalization mean. Defaults to Fashion-MNIST's.
        std (float): Normalization std. Defaults to Fashion-MNIST's.
    """
    raw = images * std + mean
    means = torch.nn.functional.avg_pool2d(raw, patch)  # (N, 1, h, w)
    return means.flatten(1) > threshold


def salience_auc(salience: Tensor, fg: Tensor) -> Tensor:
    """Per image, P(ŝ of a garment patch > ŝ of a background patch).

    Ties count one half (Mann-Whitney). Images without garment or without
    background patches give NaN and are left out of the mean by the caller.

    Args:
        salience (Tensor): (N, L) salience.
        fg (Tensor): (N, L) bool, True for garment patches.

    Returns:
        Tensor: (N,) AUC per image.
    """
    diff = salience.unsqueeze(2) - salience.unsqueeze(1)  # (N, L, L): i - j
    wins = (diff > 0).float() + 0.5 * (diff == 0).float()
    pair = (fg.unsqueeze(2) & ~fg.unsqueeze(1)).float()  # i fg, j bg
    count = pair.sum(dim=(1, 2))
    return (wins * pair).sum(dim=(1, 2)) / count.where(
        count > 0, torch.full_like(count, float('nan')))


@torch.no_grad()
def row_peak(backbone: nn.Module,
             images: Tensor,
             temperature: float,
             batch_size: int = 256) -> float:
    """Mean largest weight of a row of ``softmax(X Xᵀ / τ)``, ``X`` the
    backbone's patch tokens (the embedding source's attention matrix).

    Near 1, every token attends almost only to one token (usually itself)
    and the column sums count "nearest neighbour of" rather than measure
    content.
    """
    peaks = []
    for chunk in images.split(batch_size):
        x = backbone.patch_tokens(chunk)
        logits = torch.bmm(x, x.transpose(1, 2)) / temperature
        peaks.append(logits.softmax(-1).amax(-1).mean(1))
    return float(torch.cat(peaks).mean())


def masked_content(mask: Tensor, fg: Tensor) -> Dict[str, float]:
    """Share of the masked patches that are garment (``masked_fg``) and
    share of the garment patches that are masked (``fg_hidden``), averaged
    over images."""
    mask = mask.bool()
    fg_masked = (mask & fg).sum(1).float()
    return dict(
        masked_fg=float((fg_masked / mask.sum(1).clamp(min=1)).mean()),
        fg_hidden=float((fg_masked / fg.sum(1).clamp(min=1)).mean()))


def measure(salience: Tensor,
            fg: Tensor,
            ratio: float = 0.75,
            noise_scale: float = 0.5,
            ratio_var: float = 0.1,
            delta: float = 0.2,
            seed: int = 0) -> Dict[str, object]:
    """All numbers of one salience map against the garment proxy.

    Args:
        salience (Tensor): (N, L) normalized salience.
        fg (Tensor): (N, L) bool garment patches.
        ratio (float): Masking ratio (AMR's ``r_base``). Defaults to 0.75.
        noise_scale (float): SBM's noise width. Defaults to 0.5.
        ratio_var (float): AMR half-range. Defaults to 0.1.
        delta (float): AMR salience threshold. Defaults to 0.2.
        seed (int): Seed of the masking noise, the same for all three
            maskings. Defaults to 0.

    Returns:
        dict: ``fg_tokens``, ``auc``, ``salience_fg``, ``salience_bg``,
        ``amr_ratio_mean``, ``amr_ratio_std``, ``amr_area_corr`` (Pearson,
        over images, of AMR's ratio and the garment area) and ``maskings``
        (``random``/``sbm``/``sbam`` -> :func:`masked_content`).
    """
    auc = salience_auc(salience, fg)
    ratios = adaptive_mask_ratio(salience, ratio, ratio_var, delta)
    area = fg.float().mean(1)
    maskings = seeded_maskings(salience, ratio, ratios, noise_scale, seed)
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
        maskings={k: masked_content(m.mask, fg)
                  for k, m in maskings.items()})
