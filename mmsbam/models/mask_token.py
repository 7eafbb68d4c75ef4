"""SBAM for mask-token methods (SimMIM, BEiT v1/v2, CAE, MaskFeat).

These methods keep every token and replace the masked ones; their masks are
drawn in the data pipeline (``BEiTMaskGenerator``, ``SimMIMMaskGenerator``)
before any model exists, and the algorithm hands the stacked mask to its
backbone. The SBAM backbone rewrites that tensor in place, before its stock
forward runs, with a salience mask of the same shape, dtype, convention
(1 = masked) and per-image count, so the algorithm's loss, which reads the
same tensor, sees the SBAM mask too. No parameter is added.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmpretrain.registry import MODELS

from ..masking import MaskingResult
from .image_checks import check_binary_mask, check_images

__all__ = ['SBAMMaskTokenMixin']


class SBAMMaskTokenMixin:
    """Mixin that turns a stock mask-token backbone into its SBAM version.

    Put it first in the bases, before the stock class: ``forward(x, mask)``
    replaces ``mask`` in place, then calls the stock ``forward``.

    Args:
        masker (dict, optional): Config of the
            :class:`~mmsbam.masking.SalienceMasker`. Without ``amr`` every
            image keeps the masked count of its pipeline mask and only the
            choice of tokens changes (``mask_ratio`` may stay None). With
            ``amr`` each image's pipeline ratio moves by AMR's offset
            ``r_b - mask_ratio`` (``-ratio_var`` for flat images up to
            ``+ratio_var``), as ``SBAMiTPNHiViT`` does with iTPN's CLIP
            target; ``mask_ratio`` (required by ``amr``) should be the
            method's nominal ratio, against which AMR's range is checked.
            Defaults to the embedding salience and SBM.
        mask_unit (int, optional): Side, in patches, of one cell of the
            pipeline's mask grid (SimMIM: ``mask_patch_size //
            model_patch_size``); each cell is scored as one token, the mean
            embedding of its patches (as HiViT scores its units).
            Defaults to the class's ``default_mask_unit``.
    """

    #: Whether the stock method accepts different masked counts per image.
    per_image_counts: bool = True
    #: Side of a mask cell, in patches, in the stock config.
    default_mask_unit: int = 1

    def __init__(self,
                 *args,
                 masker: Optional[dict] = None,
                 mask_unit: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        if masker is not None and not isinstance(masker, dict):
            raise TypeError(f'{name}: masker must be None or a dict of '
                            f'SalienceMasker arguments, got {masker!r}')
        masker = dict(dict(type='SalienceMasker', mask_ratio=None),
                      **(masker or {}))
        self.masker = MODELS.build(masker)
        if self.masker.salience_source != 'embedding':
            raise ValueError(
                f"{name}: masker.salience_source must be 'embedding' (the "
                'patch embeddings, before any mask token), got '
                f'{self.masker.salience_source!r}')
        amr = self.masker.amr
        if amr is not None and amr.mode == 'sample' and \
                not self.per_image_counts:
            raise ValueError(
                f"{name}: masker.amr mode='sample' gives images different "
                'masked counts, which this method cannot take (it reshapes '
                "the visible tokens to one length); use mode='batch'")
        mask_unit = self.default_mask_unit if mask_unit is None else mask_unit
        if isinstance(mask_unit, bool) or not isinstance(mask_unit, int) \
                or mask_unit < 1:
            raise ValueError(
                f'{name}: mask_unit must be an integer >= 1, got {mask_unit!r}')
        self.mask_unit = mask_unit

    def replaces_masks(self) -> bool:
        """Whether this instance remasks; CAE's momentum teacher (marked by
        ``SBAMCAE``) encodes the mask it is given."""
        return True

    def forward(self, x: Tensor, mask: Optional[Tensor], *args, **kwargs):
        """Replace ``mask`` (in place) by the SBAM mask, then run the stock
        forward. ``mask=None`` extracts features as the stock class does."""
        if mask is not None and self.replaces_masks():
            check_images(x, self.patch_embed.projection.in_channels,
                         name=type(self).__name__)
            self.replace_mask(x, mask)
        return super().forward(x, mask, *args, **kwargs)

    def patch_tokens(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch embeddings plus the absolute position embedding where the
        model has one of the right length, and the patch grid (H, W)."""
        tokens, grid = self.patch_embed(x)
        pos = getattr(self, 'pos_embed', None)
        if pos is None and getattr(self, 'use_abs_pos_embed', False):
            pos = self.absolute_pos_embed
        L = tokens.shape[1]
        if pos is not None and pos.shape[1] in (L, L + 1):
            tokens = tokens + pos[:, pos.shape[1] - L:]
        return tokens, tuple(grid)

    @torch.no_grad()
    def replace_mask(self, x: Tensor, mask: Tensor) -> MaskingResult:
        """Write the SBAM mask into ``mask`` (any shape holding B x L
        patches of 0/1, any dtype) and return the masking of the mask
        grid."""
        tokens, (H, W) = self.patch_tokens(x)
        B, L, _ = tokens.shape
        if mask.numel() != B * L:
            raise ValueError(
                f'{type(self).__name__}: the mask has shape '
                f'{tuple(mask.shape)}, not one value per patch of the '
                f'{H}x{W} patch grid of {B} images')
        check_binary_mask(mask, type(self).__name__)
        u = self.mask_unit
        cells = self._cell_mask(mask.reshape(B, H, W), u)  # (B, h*w)
        if u > 1:  # one token per cell: its patches' mean embedding
            grid = tokens.transpose(1, 2).reshape(B, -1, H, W)
            tokens = F.avg_pool2d(grid, u).flatten(2).transpose(1, 2)
        masking = self.masker.mask_from_pipeline(
            self.masker.salience(tokens), cells.sum(1).long(), tokens)
        h, w = H // u, W // u
        new = masking.mask.view(B, h, 1, w, 1).expand(B, h, u, w, u)
        mask.copy_(new.reshape(mask.shape))
        return masking

    def _cell_mask(self, mask: Tensor, u: int) -> Tensor:
        """(B, h*w) mask of the cells; refuses a mask that is not constant
        on u x u patch cells (wrong ``mask_unit``)."""
        B, H, W = mask.shape
        if H % u or W % u:
            raise ValueError(
                f'{type(self).__name__}: mask_unit={u} does not divide the '
                f'{H}x{W} patch grid')
        m = mask.float()
        cells = m[:, ::u, ::u]
        if u > 1 and not torch.equal(
                cells.repeat_interleave(u, 1).repeat_interleave(u, 2), m):
            raise ValueError(
                f'{type(self).__name__}: the pipeline mask is not constant '
                f'on {u}x{u} patch cells; set mask_unit to the mask '
                'generator\'s mask_patch_size // model_patch_size')
        return cells.flatten(1)
