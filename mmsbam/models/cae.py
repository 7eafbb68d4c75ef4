"""``SBAMCAEPretrainViT``: CAE pre-training with SBAM masks."""
from mmpretrain.models.selfsup.cae import CAEPretrainViT
from mmpretrain.registry import MODELS

from .mask_token import SBAMMaskTokenMixin

__all__ = ['SBAMCAEPretrainViT']


@MODELS.register_module()
class SBAMCAEPretrainViT(SBAMMaskTokenMixin, CAEPretrainViT):
    """MMPretrain's ``CAEPretrainViT`` whose pipeline masks are replaced by
    SBAM masks of the same per-image counts.

    CAE builds its momentum teacher from the same backbone config and calls
    it with the complement of the student's mask; the student has already
    rewritten that mask, and the teacher (all parameters frozen by
    ``CAE.init_weights``) encodes what it is given. CAE reshapes the visible
    tokens of the batch to one length, so every image must keep the same
    count: per-image AMR is refused at build time, ``mode='batch'`` works.
    Accepts every argument of ``CAEPretrainViT`` plus ``masker`` and
    ``mask_unit`` (see :class:`SBAMMaskTokenMixin`).
    """

    per_image_counts = False

    def replaces_masks(self) -> bool:
        """False for CAE's teacher, whose parameters are all frozen."""
        return any(p.requires_grad for p in self.parameters())
