"""SBAM for MMPretrain's HiViT backbones: ``SBAMMAEHiViT`` (MAE) and the
mixin ``SBAMHiViTMixin`` that ``SBAMiTPNHiViT`` shares.

HiViT masks whole main-stage units (16 px, ``inner_patches``² stem patches
each): ``masking_id`` returns unit indices and the MLP stages run inside
the kept units. The salience scores each unit by its patch embedding,
averaged over its stem patches; HiViT adds its absolute position embedding
only after the MLP stages, at another width, so it is not part of it.
"""
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Optional, Sequence, Tuple

from torch import Tensor, nn

from mmpretrain.models.selfsup.mae import MAEHiViT
from mmpretrain.registry import MODELS

from ..masking import MaskingResult
from .image_checks import check_images
from .sbam_backbone import SBAMBackboneMixin

__all__ = ['SBAMMAEHiViT', 'SBAMHiViTMixin', 'hivit_key_padding']


@contextmanager
def hivit_key_padding(blocks: Sequence[nn.Module],
                      visible: Optional[Tensor]) -> Iterator[None]:
    """Hide padded key slots from the attention of HiViT blocks.

    HiViT's ``Attention.forward(x, rpe_index, mask)`` masks keys where
    ``mask`` is False; the stock forward passes none, so each block's
    attention gets ``visible`` for one forward. MLP-only blocks (no
    ``attn``) are left alone: they act on each unit separately.

    Args:
        blocks (Sequence[nn.Module]): ``BlockWithRPE`` modules.
        visible (Tensor, optional): (B, N) bool, True for real tokens. None
            leaves the blocks untouched.
    """
    attns = [b.attn for b in blocks if getattr(b, 'attn', None) is not None]
    if visible is None or not attns:
        yield
        return

    def masked(forward: Callable, x: Tensor, rpe_index=None, mask=None):
        return forward(x, rpe_index, visible)

    try:
        for attn in attns:
            attn.forward = partial(masked, attn.forward)
        yield
    finally:
        for attn in attns:
            del attn.forward  # back to the class's forward


class SBAMHiViTMixin(SBAMBackboneMixin):
    """SBAM unit masking for HiViT backbones whose ``masking_id`` draws
    random unit ids: ``masking_id`` returns the masking that
    :meth:`sbam_forward` computed from the images' patch embeddings."""

    salience_sources = ('embedding', )
    _masking: Optional[MaskingResult] = None

    def unit_tokens(self, x: Tensor) -> Tensor:
        """Patch embedding (B, L, C) of images (B, C, H, W), averaged over
        the stem patches of each main-stage unit."""
        return self.patch_embed(x).mean(dim=(2, 3))

    def mask_units(self, x: Tensor) -> MaskingResult:
        """SBAM masking of the units of images ``x``, by ``self.masker``."""
        return self.masker(self.unit_tokens(x))

    def masking_id(self, batch_size: int,
                   mask_ratio: float) -> Tuple[Tensor, Tensor, Tensor]:
        """The ids and mask of the SBAM masking of this forward
        (``mask_ratio`` is ignored: the masker holds the ratio).

        Returns:
            tuple: ``(ids_keep (B, K), ids_restore (B, L), mask (B, L))``.
        """
        masking = self._masking
        if masking is None or masking.mask.shape[0] != batch_size:
            raise RuntimeError(f'{type(self).__name__}.masking_id needs the '
                               'images: call the backbone')
        return masking.ids_keep, masking.ids_restore, masking.mask

    def sbam_forward(self, forward: Callable, x: Tensor,
                     mask: Optional[bool]):
        """Run the stock masked ``forward(x, mask)`` with SBAM's masking;
        with per-image ratios the padded units are hidden from the
        main-stage attention."""
        if not self.is_masked_forward(mask):
            return forward(x, None)
        check_images(x, self.patch_embed.proj.in_channels,
                     name=type(self).__name__)
        masking = self.mask_units(x)
        visible = masking.visible_slots() if masking.padded else None
        self._masking = masking
        try:
            with hivit_key_padding(self.blocks[-self.num_main_blocks:],
                                   visible):
                return forward(x, mask)
        finally:
            self._masking = None


@MODELS.register_module()
class SBAMMAEHiViT(SBAMHiViTMixin, MAEHiViT):
    """HiViT for MAE pre-training with SBAM in place of random masking.

    Overrides ``masking_id`` (and a forward wrapper that hands it the
    images); stock ``MAE``, neck and head run unchanged. Takes every
    ``MAEHiViT`` argument and the masking arguments of
    :class:`~mmsbam.models.SBAMBackboneMixin`; ``'embedding'`` salience and
    AMR in ``mode='batch'`` only.
    """

    supports_sample_amr = False
    sample_amr_obstacle = (
        "MAEPretrainDecoder drops the first latent token as a class token, "
        'which HiViT lacks, so with per-image counts it would read a padded '
        'slot')

    def forward(self, x: Tensor, mask: Optional[bool] = True) -> Tuple:
        """``MAEHiViT.forward`` with SBAM's unit masking."""
        return self.sbam_forward(super().forward, x, mask)
