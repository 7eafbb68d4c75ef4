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
from typing import Callable, Iterator, Optional, Tuple

from torch import Tensor, nn

from mmpretrain.models.selfsup.mae import MAEHiViT
from mmpretrain.registry import MODELS

from ..masking import MaskingResult
from .image_checks import check_images
from .sbam_backbone import SBAMBackboneMixin

__all__ = ['SBAMMAEHiViT', 'SBAMHiViTMixin', 'hivit_padding']


@contextmanager
def hivit_padding(backbone: nn.Module,
                  masking: MaskingResult) -> Iterator[None]:
    """Make the padded slots of one HiViT masked forward carry nothing, as
    ``SBAMViT``'s padded slots do.

    With per-image counts the stock forward gathers ``ids_keep``, whose
    padded slots point at masked units. For one forward: the masked units'
    patch embeddings are zeroed (so the padded slots, and the stem levels
    iTPN returns for its pyramid, hold nothing of them), the main stage's
    input is zeroed at padded slots (no masked unit's position embedding
    either), and padded keys are hidden from the main-stage attention
    (HiViT's ``Attention.forward(x, rpe_index, mask)`` masks keys where
    ``mask`` is False; the stock forward passes none). MLP-only blocks act
    on each unit separately. Equal counts leave the model untouched.

    Args:
        backbone (nn.Module): A HiViT (``patch_embed``, ``blocks``,
            ``num_main_blocks``).
        masking (MaskingResult): The masking of this forward.
    """
    if not masking.padded:
        yield
        return
    visible = masking.visible_slots()  # (B, K)
    kept_units = 1 - masking.mask  # (B, L)
    main = backbone.blocks[-backbone.num_main_blocks:]

    def zero_masked_units(module, inputs, units):  # (B, L, h, w, C)
        return units * kept_units[:, :, None, None, None].to(units.dtype)

    def zero_padded_slots(module, args):  # (x (B, K, C), *rest)
        x, *rest = args
        return (x * visible.unsqueeze(-1).to(x.dtype), *rest)

    def hide_padded_keys(forward: Callable, x: Tensor, rpe_index=None,
                         mask=None):
        return forward(x, rpe_index, visible)

    attns = [b.attn for b in main if getattr(b, 'attn', None) is not None]
    handles = [
        backbone.patch_embed.register_forward_hook(zero_masked_units),
        main[0].register_forward_pre_hook(zero_padded_slots)
    ]
    try:
        for attn in attns:
            attn.forward = partial(hide_padded_keys, attn.forward)
        yield
    finally:
        for handle in handles:
            handle.remove()
        for attn in attns:
            attn.__dict__.pop('forward', None)  # back to the class's forward


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
        with per-image ratios the padded slots carry nothing
        (:func:`hivit_padding`)."""
        if not self.is_masked_forward(mask):
            return forward(x, None)
        check_images(x, self.patch_embed.proj.in_channels,
                     name=type(self).__name__)
        masking = self.mask_units(x)
        self._masking = masking
        try:
            with hivit_padding(self, masking):
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
