"""``SBAMiTPNHiViT``: MMPretrain's ``iTPNHiViT`` (iTPN, pixel and CLIP
targets) with SBAM masking."""
from typing import Optional, Tuple, Union

from torch import Tensor

from mmpretrain.models.selfsup.itpn import iTPNHiViT
from mmpretrain.registry import MODELS

from .hivit import SBAMHiViTMixin
from .image_checks import check_binary_mask

__all__ = ['SBAMiTPNHiViT']


@MODELS.register_module()
class SBAMiTPNHiViT(SBAMHiViTMixin, iTPNHiViT):
    """iTPN's HiViT with SBAM in place of its masks.

    Pixel target: like MAE, ``masking_id`` returns SBAM's unit masking
    (``forward_pixel`` wraps the stock one); per-image AMR pads the kept
    units and hides the padding from the main-stage attention (the iTPN
    neck's pyramid is MLP-only and its decoder gathers by ``ids_restore``).

    CLIP target: the stock ``iTPN`` passes the data pipeline's
    ``BEiTMaskGenerator`` mask; SBAM keeps its number of masked units per
    image, chooses which ones, and writes its mask into that tensor in
    place, so the stock head computes the loss on SBAM's mask. With AMR
    the ratio is moved by AMR's offset ``r_b - mask_ratio``. No tokens are
    dropped (mask tokens), so per-image AMR needs no padding.

    Takes every ``iTPNHiViT`` argument and the masking arguments of
    :class:`~mmsbam.models.SBAMBackboneMixin`; ``'embedding'`` salience.
    """

    def forward_pixel(self, x: Tensor, mask: Optional[bool] = True) -> Tuple:
        """``iTPNHiViT.forward_pixel`` with SBAM's unit masking."""
        return self.sbam_forward(super().forward_pixel, x, mask)

    def forward_clip(self, x: Tensor,
                     mask: Union[Tensor, bool, None] = True) -> Tuple:
        """``iTPNHiViT.forward_clip`` on SBAM's mask.

        Args:
            x (Tensor): Images (B, C, H, W).
            mask (Tensor, optional): The pipeline's 0/1 mask (B, h, w) or
                (B, L), 1 = masked; overwritten in place with SBAM's. None
                extracts unmasked features; other values are refused.
        """
        if not self.is_masked_forward(mask):
            return super().forward_clip(x, None)
        if not isinstance(mask, Tensor):
            raise ValueError(
                "SBAMiTPNHiViT(reconstruction_type='clip') needs the data "
                "pipeline's mask (B, h, w) (e.g. from BEiTMaskGenerator): "
                'SBAM keeps its count of masked units per image')
        tokens = self.unit_tokens(x)
        if mask[0].numel() != tokens.shape[1]:
            raise ValueError(f'SBAMiTPNHiViT: the pipeline mask has '
                             f'{mask[0].numel()} cells per image, the '
                             f'backbone {tokens.shape[1]} units')
        check_binary_mask(mask, type(self).__name__)
        masking = self.masker.mask_from_pipeline(
            self.masker.salience(tokens),
            mask.reshape(mask.shape[0], -1).sum(1).long(), tokens)
        mask.copy_(masking.mask.view_as(mask))
        return super().forward_clip(x, mask)
