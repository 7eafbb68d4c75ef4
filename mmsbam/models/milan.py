"""``SBAMMILANViT``: MMPretrain's ``MILANViT`` (MILAN) with SBAM masking."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmpretrain.models.selfsup.milan import MILANViT
from mmpretrain.registry import MODELS

from .sbam_backbone import SBAMBackboneMixin

__all__ = ['SBAMMILANViT']


@MODELS.register_module()
class SBAMMILANViT(SBAMBackboneMixin, MILANViT):
    """MILAN's ViT with SBAM in place of CLIP-attention importance masking.

    Overrides ``attention_masking`` only: the salience comes from the
    backbone's own patch tokens and the CLIP ``importance`` the stock
    ``MILAN`` algorithm passes is ignored (``importance=None`` still extracts
    unmasked features). Neck, head and CLIP target run unchanged. Takes
    every ``MILANViT`` argument and the masking arguments of
    :class:`~mmsbam.models.SBAMBackboneMixin`; AMR in ``mode='batch'``
    only.
    """

    supports_sample_amr = False
    sample_amr_obstacle = (
        "MILAN's decoder (MILANPretrainDecoder) takes ids_keep / ids_dump "
        'of equal length per image and attends over them with no padding '
        'mask')

    def attention_masking(self, x: Tensor, mask_ratio: float,
                          importance: Optional[Tensor] = None
                          ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """SBAM masking of patch tokens ``x`` (B, L, D); ``mask_ratio`` and
        ``importance`` are ignored (the masker holds the ratio).

        Returns:
            tuple: ``(x_masked (B, K, D), ids_restore (B, L), ids_keep (B, K),
            ids_dump (B, L - K))``.
        """
        D = x.shape[-1]
        masking = self.masker(x, layers=self.layers)
        ids_shuffle = torch.argsort(masking.ids_restore, dim=1)
        K = masking.ids_keep.shape[1]
        x_masked = torch.gather(
            x, 1, masking.ids_keep.unsqueeze(-1).expand(-1, -1, D))
        return (x_masked, masking.ids_restore, masking.ids_keep,
                ids_shuffle[:, K:])
