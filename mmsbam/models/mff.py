"""``SBAMMFFViT``: MMPretrain's ``MFFViT`` (MFF) with SBAM masking."""
from contextlib import ExitStack
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmpretrain.models.selfsup.mff import MFFViT
from mmpretrain.registry import MODELS

from .image_checks import check_images
from .mae import key_padding
from .sbam_backbone import SBAMBackboneMixin

__all__ = ['SBAMMFFViT']


@MODELS.register_module()
class SBAMMFFViT(SBAMBackboneMixin, MFFViT):
    """MFF's ViT with SBAM in place of random masking.

    Overrides ``random_masking`` only (plus a forward wrapper that hides
    padded slots from attention when AMR gives per-image ratios); MFF's
    multi-level fusion, the stock ``MFF`` algorithm, neck and head run
    unchanged. Takes every ``MFFViT`` argument and the masking arguments of
    :class:`~mmsbam.models.SBAMBackboneMixin`.
    """

    def random_masking(self,
                       x: Tensor,
                       mask_ratio: float = 0.75
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        """SBAM masking of patch tokens ``x`` (B, L, D) (patch plus position
        embedding); the ratio is the masker's (``mask_ratio`` is ignored).

        Returns:
            tuple: ``(x_masked (B, K, D), mask (B, L), ids_restore (B, L))``.
        """
        B, _, D = x.shape
        masking = self.masker(x, layers=self.layers)
        x_masked = torch.gather(
            x, 1, masking.ids_keep.unsqueeze(-1).expand(-1, -1, D))
        if masking.padded:
            slots = masking.visible_slots()
            x_masked = x_masked * slots.unsqueeze(-1).to(x.dtype)
            visible = torch.cat([slots.new_ones(B, 1), slots], dim=1)
            padding = getattr(self, '_padding', None)
            if padding is None:
                raise RuntimeError('SBAMMFFViT: per-image ratios pad the '
                                   'batch; call the backbone, not '
                                   'random_masking alone')
            padding.enter_context(key_padding(self.layers, visible))
        return x_masked, masking.mask, masking.ids_restore

    def forward(self, x: Tensor, mask: Optional[bool] = True) -> Tuple:
        """``MFFViT.forward``; padded slots (per-image AMR) stay hidden from
        attention until it returns. ``mask=None``/``False`` extracts the
        features of the unmasked image, as ``SBAMViT`` does."""
        in_channels = self.patch_embed.projection.in_channels
        if not self.is_masked_forward(mask):
            check_images(x, in_channels, name=type(self).__name__,
                         check_finite=False)
            # MAEViT.forward(x, None): VisionTransformer's forward
            return super(MFFViT, self).forward(x, mask=None)
        check_images(x, in_channels, name=type(self).__name__)
        with ExitStack() as self._padding:
            try:
                return super().forward(x, mask)
            finally:
                self._padding = None
