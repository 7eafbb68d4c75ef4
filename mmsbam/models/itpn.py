"""``SBAMiTPNHiViT``: MMPretrain's ``iTPNHiViT`` (iTPN, pixel and CLIP
targets) with SBAM masking."""
from typing import Optional, Tuple, Union

from torch import Tensor

from mmpretrain.models.selfsup.itpn import iTPNHiViT
from mmpretrain.registry import MODELS

from .hivit import SBAMHiViTMixin

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
            mask (Tensor, optional): The pipeline's mask (B, h, w) or (B, L),
                1 = masked; overwritten in place with SBAM's. None extracts
                unmasked features.
        """
        if mask is None or mask is False:
            return super().forward_clip(x, None)
        if not isinstance(mask, Tensor):
            raise ValueError(
                "SBAMiTPNHiViT(reconstruction_type='clip') needs the data "
                "pipeline's mask (B, h, w) (e.g. from BEiTMaskGenerator): "
                'SBAM keeps its count of masked units per image')
        tokens = self.unit_tokens(x)
        salience = self.masker.salience(tokens)
        if self.masker.amr is not None and self.masker.sbam_enabled:
            masking = self.masker(tokens, salience=salience,
                                  ratio=self.clip_ratio(mask, salience))
        else:  # the pipeline's exact counts (a float ratio could round)
            num_masked = mask.reshape(mask.shape[0], -1).sum(1).long()
            self.check_cells(mask, salience.shape[1])
            masking = self.masker(tokens, salience=salience,
                                  num_masked=num_masked)
        mask.copy_(masking.mask.view_as(mask))
        return super().forward_clip(x, mask)

    def clip_ratio(self, mask: Tensor, salience: Tensor) -> Tensor:
        """(B,) masking ratios: the pipeline mask's fraction, moved by AMR's
        offset ``r_b - mask_ratio`` when AMR is on."""
        L = salience.shape[1]
        self.check_cells(mask, L)
        ratio = mask.reshape(mask.shape[0], -1).float().mean(1)
        amr = self.masker.amr
        if amr is not None and self.masker.sbam_enabled:
            ratio = ratio + amr(salience).to(ratio) - amr.base_ratio
        return ratio.clamp(0, 1 - 1.5 / L)

    @staticmethod
    def check_cells(mask: Tensor, num_units: int) -> None:
        """Refuse a pipeline mask whose grid is not the backbone's units."""
        if mask[0].numel() != num_units:
            raise ValueError(f'SBAMiTPNHiViT: the pipeline mask has '
                             f'{mask[0].numel()} cells per image, the '
                             f'backbone {num_units} units')
