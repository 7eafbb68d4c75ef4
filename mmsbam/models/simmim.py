"""``SBAMSimMIMSwinTransformer``: SimMIM pre-training with SBAM masks."""
from mmpretrain.models.selfsup.simmim import SimMIMSwinTransformer
from mmpretrain.registry import MODELS

from .mask_token import SBAMMaskTokenMixin

__all__ = ['SBAMSimMIMSwinTransformer']


@MODELS.register_module()
class SBAMSimMIMSwinTransformer(SBAMMaskTokenMixin, SimMIMSwinTransformer):
    """MMPretrain's ``SimMIMSwinTransformer`` whose pipeline masks are
    replaced by SBAM masks of the same per-image counts.

    SimMIM masks 32-pixel cells of 4-pixel patches, so each 8 x 8-patch cell
    is scored as one token (the mean of its patch embeddings; the salience
    of 2,304 patches would cost more than the Swin step it masks at small
    widths) and SBM ranks cells
    (``mask_unit=8``, the stock config's ``mask_patch_size //
    model_patch_size``; a pipeline mask that is not constant on the cells is
    refused). Accepts every argument of ``SimMIMSwinTransformer`` plus
    ``masker`` and ``mask_unit`` (see :class:`SBAMMaskTokenMixin`). SimMIM's
    L1 loss averages over masked pixels, so per-image AMR is supported.
    """

    default_mask_unit = 8
