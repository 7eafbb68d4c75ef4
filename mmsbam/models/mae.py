"""``SBAMViT``: MMPretrain's ``MAEViT`` with salience-based adaptive masking.

It adds no parameters, so its checkpoints load into a stock ViT. Only
``forward`` changes, cut along MAE's data flow: ``patch_tokens`` ->
``mask_tokens`` (its :class:`~mmsbam.masking.SalienceMasker`) ->
``forward_encoder``. With per-image AMR ratios the images are encoded in a
few sub-batches of similar visible counts, each padded only to its own
longest image, padded slots hidden from attention
(:mod:`mmsbam.models.grouped_encoding`).
"""
from contextlib import contextmanager
from functools import partial
from typing import Iterator, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS

from ..masking import MaskingResult
from .grouped_encoding import encode_in_groups
from .image_checks import check_images
from .sbam_backbone import SBAMBackboneMixin

__all__ = ['SBAMViT', 'key_padding']


@contextmanager
def key_padding(layers: nn.ModuleList,
                visible: Optional[Tensor]) -> Iterator[None]:
    """Hide padded key slots from every layer's attention for one forward.

    MMPretrain's ``MultiheadAttention`` calls its instance attribute
    ``scaled_dot_product_attention`` with no mask; wrapping it with an
    additive mask reuses the stock layers unchanged (layer scale, drop path,
    FFN type). Query rows of padded slots still attend to real tokens (the
    class token is always real), so they stay finite and are discarded.

    Args:
        layers (nn.ModuleList): Encoder layers.
        visible (Tensor, optional): (B, N) bool, True for real tokens. None
            leaves the layers untouched.
    """
    if visible is None:
        yield
        return
    bias = torch.zeros(visible.shape, dtype=torch.float32,
                       device=visible.device)
    bias = bias.masked_fill(~visible, float('-inf'))[:, None, None, :]

    def masked(attend, query, key, value, **kwargs):
        return attend(query, key, value, attn_mask=bias.to(query.dtype),
                      **kwargs)

    originals = [layer.attn.scaled_dot_product_attention for layer in layers]
    try:
        for layer, attend in zip(layers, originals):
            layer.attn.scaled_dot_product_attention = partial(masked, attend)
        yield
    finally:
        for layer, attend in zip(layers, originals):
            layer.attn.scaled_dot_product_attention = attend


@MODELS.register_module()
class SBAMViT(SBAMBackboneMixin, MAEViT):
    """Vision Transformer for MAE pre-training with SBAM masking.

    Accepts every argument of ``MAEViT`` plus the ones below. Its forward
    returns ``(latent, mask, ids_restore)`` for MMPretrain's unchanged
    ``MAEPretrainDecoder`` and ``MAEPretrainHead``. The masking is done by
    ``self.masker``, a :class:`~mmsbam.masking.SalienceMasker` with
    ``mask_ratio`` as its ratio, built from ``masker`` or from the
    shorthand arguments (give one or the other).

    Args:
        noise_scale (float, optional): Width of the uniform noise added to
            the salience (0 masks strictly by salience). Masker default 0.5.
        temperature (float, optional): Softmax temperature of the salience.
            Masker default 1.0.
        salience_source (str, optional): ``'embedding'`` (parameter-free
            ``X Xᵀ`` of the patch tokens) or ``'attention'`` (self-attention
            of encoder block ``salience_layer`` on all tokens). Masker
            default ``'embedding'``.
        salience_layer (int, optional): Block used by
            ``salience_source='attention'``. Masker default 0.
        amr (dict, optional): Adaptive masking ratio,
            ``dict(ratio_var=..., delta=..., mode='sample'|'batch')``, plus
            ``sync=True`` for one batch ratio over all processes; None
            masks every image with ``mask_ratio``.
        mask_generator (dict, optional): Config of a registered mask
            generator; overrides ``noise_scale``.
        masker (dict, optional): The whole masker config,
            ``dict(type='SalienceMasker', ...)``; its ``mask_ratio`` is the
            backbone's. Excludes the shorthands above.
        check_finite (bool): The masked forward refuses NaN/Inf pixels with
            a ``ValueError`` (one reduction over the batch and, on a GPU,
            one device sync per iteration). Defaults to True.
        encoder_groups (int): With per-image AMR, encode the batch in at
            most this many sub-batches of similar visible counts, each
            padded only to its own maximum (1: one batch padded to the
            batch maximum). Defaults to 4 (docs/benchmarks.md).

    Images with the wrong channel count (any forward) or, in the masked
    forward, a size other than ``img_size`` raise a ``ValueError`` naming
    the sizes and the fix (see :func:`mmsbam.models.check_images`).
    """

    def __init__(self,
                 *args,
                 check_finite: bool = True,
                 encoder_groups: int = 4,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)  # builds self.masker
        if not isinstance(check_finite, bool):
            raise TypeError('SBAMViT: check_finite must be True or False, '
                            f'got {check_finite!r}')
        self.check_finite = check_finite
        if isinstance(encoder_groups, bool) or not isinstance(
                encoder_groups, int) or encoder_groups < 1:
            raise ValueError('SBAMViT: encoder_groups must be an integer >= '
                             f'1, got {encoder_groups!r}')
        self.encoder_groups = encoder_groups
        projection = self.patch_embed.projection
        self.in_channels = projection.in_channels
        self.patch_size = projection.kernel_size[0]

    def patch_tokens(self, x: Tensor) -> Tensor:
        """Patch tokens (B, L, D) of images (B, C, H, W): patch embedding
        plus position embedding, no class token (what SBAM scores)."""
        return self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]

    def mask_tokens(self, tokens: Tensor) -> MaskingResult:
        """SBAM masking of patch tokens (B, L, D), by ``self.masker``."""
        return self.masker(tokens, layers=self.layers)

    def forward_encoder(self, tokens: Tensor,
                        masking: MaskingResult) -> Tensor:
        """Encode the visible tokens; returns the latent (B, 1 + K, D),
        ``K`` the largest visible count, after the final norm. With
        per-image counts the images are encoded in at most
        ``encoder_groups`` sub-batches of similar counts; slots past an
        image's count hold no token (the decoder never reads them)."""
        D = tokens.shape[-1]
        x = torch.gather(  # (B, K, D)
            tokens, 1, masking.ids_keep.unsqueeze(-1).expand(-1, -1, D))
        if not masking.padded:
            return self.encode_visible(x, None)
        return encode_in_groups(x, masking.num_visible, self.encoder_groups,
                                self.encode_visible)

    def encode_visible(self, x: Tensor, slots: Optional[Tensor]) -> Tensor:
        """Class token + encoder layers + final norm on visible tokens
        (n, k, D); ``slots`` (n, k) marks real tokens where some images
        have fewer (padding, zeroed and hidden from attention)."""
        n = x.shape[0]
        visible = None
        if slots is not None:
            x = x * slots.unsqueeze(-1).to(x.dtype)  # zero the padding
            visible = torch.cat([slots.new_ones(n, 1), slots], dim=1)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(n, -1, -1), x), dim=1)
        with key_padding(self.layers, visible):
            for layer in self.layers:
                x = layer(x)
        return self.norm1(x)

    def forward(
        self,
        x: Tensor,
        mask: Optional[bool] = True
    ) -> Union[Tuple[Tensor, Tensor, Tensor], Tuple[Tensor, ...]]:
        """Encode the visible tokens chosen by SBAM.

        Args:
            x (Tensor): Images of shape (B, C, H, W).
            mask (bool, optional): ``None``/``False`` extracts features of
                the unmasked image, as ``MAEViT`` does.

        Returns:
            tuple: ``(latent, mask, ids_restore)``; ``latent`` is
            (B, 1 + K, D) with ``K`` the largest visible count in the batch.
        """
        if not self.is_masked_forward(mask):
            # other sizes are fine here (position embedding interpolated)
            check_images(x, self.in_channels, check_finite=False)
            return super().forward(x, mask=None)
        check_images(x, self.in_channels, self.img_size, self.patch_size,
                     check_finite=self.check_finite)
        tokens = self.patch_tokens(x)
        masking = self.mask_tokens(tokens)
        latent = self.forward_encoder(tokens, masking)
        return latent, masking.mask, masking.ids_restore
