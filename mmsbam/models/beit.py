"""``SBAMBEiTPretrainViT``: BEiT v1 and v2 pre-training with SBAM masks."""
from mmpretrain.models.selfsup.beit import BEiTPretrainViT
from mmpretrain.registry import MODELS

from .mask_token import SBAMMaskTokenMixin

__all__ = ['SBAMBEiTPretrainViT']


@MODELS.register_module()
class SBAMBEiTPretrainViT(SBAMMaskTokenMixin, BEiTPretrainViT):
    """MMPretrain's ``BEiTPretrainViT`` whose pipeline masks are replaced by
    SBAM masks of the same per-image counts (BEiT v1 and v2 share it).

    Accepts every argument of ``BEiTPretrainViT`` plus ``masker`` and
    ``mask_unit`` (see :class:`SBAMMaskTokenMixin`). BEiT's loss takes any
    masked count per image, so per-image AMR is supported.
    """
