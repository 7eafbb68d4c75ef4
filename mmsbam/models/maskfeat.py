"""``SBAMMaskFeatViT``: MaskFeat pre-training with SBAM masks."""
from mmpretrain.models.selfsup.maskfeat import MaskFeatViT
from mmpretrain.registry import MODELS

from .mask_token import SBAMMaskTokenMixin

__all__ = ['SBAMMaskFeatViT']


@MODELS.register_module()
class SBAMMaskFeatViT(SBAMMaskTokenMixin, MaskFeatViT):
    """MMPretrain's ``MaskFeatViT`` whose pipeline masks are replaced by
    SBAM masks of the same per-image counts.

    Accepts every argument of ``MaskFeatViT`` plus ``masker`` and
    ``mask_unit`` (see :class:`SBAMMaskTokenMixin`). MaskFeat's HOG loss
    averages over the masked patches of the batch, so per-image AMR is
    supported.
    """
