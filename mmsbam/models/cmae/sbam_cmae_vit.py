"""``SBAMCMAEViT``: CMAE's online encoder with SBAM's cell masks."""
from typing import Optional, Tuple

from torch import Tensor

from mmpretrain.registry import MODELS

from ...masking import normalize_salience
from ..image_checks import check_images
from ..sbam_backbone import SBAMBackboneMixin
from .cmae_vit import CMAEViT, pool_cells

__all__ = ['SBAMCMAEViT']


@MODELS.register_module()
class SBAMCMAEViT(SBAMBackboneMixin, CMAEViT):
    """``CMAEViT`` whose cells are chosen by SBAM instead of at random.

    The salience ``ŝ`` of the online view's patches (``'embedding'``:
    ``X Xᵀ`` of the patch tokens, as for MAE; ``'attention'``: an encoder
    block's attention; ``'teacher'``: the momentum target encoder's
    last-block attention on the unmasked online view, which the ``CMAE``
    algorithm computes and passes as ``salience=``) is averaged over each
    cell and min-max re-normalised; SBM then masks
    ``C - int(C (1 - mask_ratio))`` cells, exactly CMAE's count. Overrides
    ``random_masking`` only; adds no parameter, so its checkpoint is
    ``CMAEViT``'s (the stock ``VisionTransformer``'s).

    Takes every ``CMAEViT`` argument and the masking arguments of
    :class:`~mmsbam.models.SBAMBackboneMixin`. Per-image AMR
    (``amr=dict(mode='sample')``) is refused (see ``sample_amr_obstacle``);
    ``amr=dict(mode='batch')`` works.
    """

    salience_sources = ('embedding', 'attention', 'teacher')
    supports_sample_amr = False
    sample_amr_obstacle = (
        'per-image ratios give images different visible counts, and the '
        "CMAE encoder here has no key padding for them (SBAMViT's grouped "
        'encoding is not wired into CMAEViT)')

    def forward(self, x: Tensor, mask: Optional[bool] = True,
                salience: Optional[Tensor] = None):
        """``CMAEViT.forward``; ``salience`` (B, L) is the patch salience
        for ``salience_source='teacher'`` (ignored by the other sources)."""
        if mask is None or mask is False:
            return super().forward(x, mask)
        check_images(x, self.patch_embed.projection.in_channels,
                     name=type(self).__name__)
        if self.masker.salience_source == 'teacher' and salience is None:
            raise ValueError(
                f"{type(self).__name__}: salience_source='teacher' needs the "
                'target encoder\'s salience: build it inside the CMAE '
                'algorithm, which passes salience=')
        self._salience = salience
        try:
            return super().forward(x, mask)
        finally:
            self._salience = None

    def random_masking(self, x: Tensor, mask_ratio: float = 0.65
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        """SBAM cell masking of patch tokens ``x`` (B, L, D) (patch plus
        position embedding); the ratio is the masker's.

        Returns:
            tuple: ``(x_masked, mask (B, L), ids_restore)`` as ``CMAEViT``.
        """
        salience = getattr(self, '_salience', None)
        if salience is None:
            salience = self.masker.salience(x, self.layers)  # (B, L)
        cells = normalize_salience(
            pool_cells(salience.float(), self.patch_resolution,
                       self.mask_unit))
        masking = self.masker(x, salience=cells)
        return self.mask_cells(x, masking.mask)
