"""``BootMAEHead``: BootMAE's two loss terms (``run_pretraining.py``,
``train_one_epoch``, of the official code).

- Pixel target: the input normalised **per patch and per channel** (mean
  over the p x p pixels, std = sqrt(biased var + ``pixel_eps``)); MAE's
  ``norm_pix`` normalises over all p * p * C values with the unbiased
  variance and 1e-6 instead.
- Weights (``weight_mask``): ``w = m * AvgPool3x3(m) + m`` (zero padding
  counted, the window includes the cell): a masked cell weighs 1 plus the
  fraction of its 3 x 3 neighbourhood that is masked.
- Rloss = mean(w (pred - target)^2) / mean(m) over pixels, Ploss =
  mean(w (LN(t) - LN(pred))^2) / mean(m) over features, LN a LayerNorm
  without affine (eps ``feature_eps``) on **both** sides: the divisor is
  the masked count, not the sum of the weights.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmpretrain.registry import MODELS

__all__ = ['BootMAEHead']


@MODELS.register_module()
class BootMAEHead(BaseModule):
    """BootMAE's pixel and feature losses.

    Args:
        patch_size (int): Patch size p. Defaults to 16.
        weight_mask (bool): Weight masked cells by their masked
            neighbourhood (official ``--weight_mask``, set by the recipe);
            False weighs every masked cell 1. Defaults to True.
        pixel_eps (float): Added to the per-patch, per-channel variance.
            Defaults to 1e-5.
        feature_eps (float): Epsilon of the non-affine LayerNorm of the
            feature loss. Defaults to 1e-6.
    """

    def __init__(self,
                 patch_size: int = 16,
                 weight_mask: bool = True,
                 pixel_eps: float = 1e-5,
                 feature_eps: float = 1e-6) -> None:
        super().__init__()
        for name, value in (('pixel_eps', pixel_eps),
                            ('feature_eps', feature_eps)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f'BootMAEHead: {name} must be a finite '
                                 f'number > 0, got {value!r}')
        if not (isinstance(patch_size, int) and patch_size > 0):
            raise ValueError('BootMAEHead: patch_size must be a positive '
                             f'integer, got {patch_size!r}')
        self.patch_size = patch_size
        self.weight_mask = bool(weight_mask)
        self.pixel_eps = float(pixel_eps)
        self.feature_eps = float(feature_eps)

    def pixel_target(self, images: Tensor) -> Tensor:
        """(B, C, H, W) images normalised per patch and per channel."""
        B, C, H, W = images.shape
        p = self.patch_size
        x = images.float().reshape(B, C, H // p, p, W // p, p)
        mean = x.mean(dim=(3, 5), keepdim=True)
        var = x.var(dim=(3, 5), unbiased=False, keepdim=True)
        return ((x - mean) / (var + self.pixel_eps).sqrt()).reshape(
            B, C, H, W)

    def loss_weights(self, mask: Tensor, height: int, width: int) -> Tensor:
        """(B, L) weights of the (B, L) 0/1 mask on an H x W patch grid."""
        m = mask.float().reshape(-1, 1, height, width)
        if not self.weight_mask:
            return m.flatten(1)
        pooled = F.avg_pool2d(m, 3, stride=1, padding=1,
                              count_include_pad=True)
        return (m * pooled + m).flatten(1)

    def loss(self, pixel_pred: Tensor, feature_pred: Tensor, images: Tensor,
             feature_target: Tensor, mask: Tensor,
             feature_weight: float) -> Dict[str, Tensor]:
        """The two terms, the feature term already times ``feature_weight``.

        Args:
            pixel_pred (Tensor): (B, C, H, W) pixel decoder output.
            feature_pred (Tensor): (B, L, D) feature decoder output.
            images (Tensor): (B, C, H, W) normalised input images.
            feature_target (Tensor): (B, L, D) EMA encoder's last block
                output on the unmasked images (no final norm).
            mask (Tensor): (B, L), 1 = masked.
            feature_weight (float): lambda_f of this epoch.

        Returns:
            dict: ``loss_pixel`` (Rloss) and ``loss_feature``
            (lambda_f * Ploss).
        """
        B, C, H, W = images.shape
        p = self.patch_size
        h, w = H // p, W // p
        weights = self.loss_weights(mask, h, w)  # (B, L)
        masked_fraction = mask.float().mean()
        target = self.pixel_target(images)
        err = (pixel_pred.float() - target)**2  # (B, C, H, W)
        err = err.reshape(B, C, h, p, w, p).mean(dim=(1, 3, 5)).flatten(1)
        loss_pixel = (weights * err).mean() / masked_fraction
        D = feature_pred.shape[-1]
        t = F.layer_norm(feature_target.float(), (D, ),
                         eps=self.feature_eps)
        s = F.layer_norm(feature_pred.float(), (D, ), eps=self.feature_eps)
        ferr = ((t - s)**2).mean(dim=-1)  # (B, L)
        loss_feature = (weights * ferr).mean() / masked_fraction
        return dict(loss_pixel=loss_pixel,
                    loss_feature=feature_weight * loss_feature)
