"""``SBAMViT``: MMPretrain's ``MAEViT`` with salience-based adaptive masking.

It adds no parameters, so its checkpoints load into a stock ViT. Only
``forward`` changes: masks come from a registered mask generator fed with
token salience, and with per-image AMR ratios the visible tokens are padded
to the longest image and padded slots are hidden from attention.
"""
from contextlib import contextmanager
from functools import partial
from typing import Iterator, Optional, Tuple, Union

import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn

from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS

from .amr import DEFAULT_DELTA, DEFAULT_RATIO_VAR, check_amr_args
from .checks import check_images
from .masking import MaskingResult, RandomMaskGenerator
from .salience import attention_salience, token_salience, validate_temperature

__all__ = ['SBAMViT', 'SALIENCE_SOURCES']

SALIENCE_SOURCES = ('embedding', 'attention')


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
class SBAMViT(MAEViT):
    """Vision Transformer for MAE pre-training with SBAM masking.

    Accepts every argument of ``MAEViT`` plus the ones below. Its forward
    returns ``(latent, mask, ids_restore)`` for MMPretrain's unchanged
    ``MAEPretrainDecoder`` and ``MAEPretrainHead``.

    Args:
        noise_scale (float): Width of the uniform noise added to the
            salience (0 masks strictly by salience). Defaults to 0.5.
        temperature (float): Softmax temperature of the salience. Defaults
            to 1.0.
        salience_source (str): ``'embedding'`` (parameter-free ``X Xᵀ`` of
            the patch tokens) or ``'attention'`` (self-attention of encoder
            block ``salience_layer`` on all tokens). Defaults to
            ``'embedding'``.
        salience_layer (int): Block used by ``salience_source='attention'``.
            Defaults to 0.
        amr (dict, optional): Adaptive masking ratio,
            ``dict(ratio_var=..., delta=..., mode='sample'|'batch')``; None
            masks every image with ``mask_ratio``. Defaults to None.
        mask_generator (dict, optional): Config of a registered mask
            generator; overrides ``noise_scale``. Defaults to
            ``dict(type='SalienceMaskGenerator', noise_scale=noise_scale)``.
        check_finite (bool): The masked forward refuses NaN/Inf pixels with
            a ``ValueError`` (one reduction over the batch and, on a GPU,
            one device sync per iteration). Defaults to True.

    Images with the wrong channel count (any forward) or, in the masked
    forward, a size other than ``img_size`` raise a ``ValueError`` naming
    the sizes and the fix (see :func:`mmsbam.checks.check_images`).
    """

    def __init__(self,
                 *args,
                 noise_scale: float = 0.5,
                 temperature: float = 1.0,
                 salience_source: str = 'embedding',
                 salience_layer: int = 0,
                 amr: Optional[dict] = None,
                 mask_generator: Optional[dict] = None,
                 check_finite: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        ratio = self.mask_ratio
        if not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
            raise ValueError(f'mask_ratio must be in (0, 1), got {ratio!r}')
        self.temperature = validate_temperature(temperature)
        if salience_source not in SALIENCE_SOURCES:
            raise ValueError(f'salience_source must be one of '
                             f'{SALIENCE_SOURCES}, got {salience_source!r}')
        self.salience_source = salience_source
        if salience_source == 'attention' and not (
                isinstance(salience_layer, int)
                and 0 <= salience_layer < len(self.layers)):
            raise ValueError(f'salience_layer must be in [0, '
                             f'{len(self.layers) - 1}], got {salience_layer!r}')
        self.salience_layer = salience_layer
        if mask_generator is None:
            mask_generator = dict(
                type='SalienceMaskGenerator', noise_scale=noise_scale)
        self.mask_generator = MODELS.build(mask_generator)
        self.amr = self._build_amr(amr)
        self.check_finite = bool(check_finite)
        projection = self.patch_embed.projection
        self.in_channels = projection.in_channels
        self.patch_size = projection.kernel_size[0]
        #: False masks at random with ``mask_ratio`` (stock MAE), e.g. for
        #: the warm-up of SBAMHook; not saved in checkpoints.
        self.salience_enabled = True
        self._random_generator = RandomMaskGenerator()
        #: What the last forward did: ``salience`` (B, L), ``mask`` (B, L),
        #: ``ratio`` (B,), all detached; for hooks and pictures.
        self.last_masking: Optional[dict] = None
        # first-batch report, once per mode (random warm-up, then SBAM)
        self._logged_modes: set = set()

    def _build_amr(self, amr: Optional[dict]):
        if amr is None:
            return None
        if not isinstance(amr, dict):
            raise TypeError(f'amr must be a dict or None, got {type(amr)}')
        amr = dict(amr)
        unknown = set(amr) - {'type', 'ratio_var', 'delta', 'mode'}
        if unknown:
            raise ValueError(f'amr got unknown keys {sorted(unknown)}; allowed:'
                             " 'ratio_var', 'delta', 'mode'")
        amr.setdefault('type', 'AdaptiveMaskRatio')
        amr.setdefault('ratio_var', DEFAULT_RATIO_VAR)
        amr.setdefault('delta', DEFAULT_DELTA)
        amr.setdefault('mode', 'sample')
        check_amr_args(self.mask_ratio, amr['ratio_var'], amr['delta'],
                       amr['mode'], base_name='mask_ratio')
        return MODELS.build(dict(base_ratio=self.mask_ratio, **amr))

    def salience(self, tokens: Tensor) -> Tensor:
        """Normalised salience ``ŝ`` (B, L) of patch tokens (B, L, D)."""
        if self.salience_source == 'attention':
            return attention_salience(tokens, self.layers,
                                      self.salience_layer, self.temperature)
        return token_salience(tokens, self.temperature)

    def generate_mask(self, tokens: Tensor) -> Tuple[MaskingResult, Tensor,
                                                      Union[float, Tensor]]:
        """Salience, per-image ratio and mask for patch tokens (B, L, D).

        Returns:
            tuple: ``(masking, salience, ratio)``.
        """
        generator = self.mask_generator
        amr = self.amr
        if not self.salience_enabled:
            generator, amr = self._random_generator, None
        # The salience is computed even for random masking so that masking
        # statistics (masked vs visible salience) stay comparable.
        salience = self.salience(tokens)
        ratio = amr(salience) if amr is not None else self.mask_ratio
        masking = generator(salience, ratio)
        ratios = ratio if isinstance(ratio, Tensor) else torch.full(
            (salience.shape[0], ), float(ratio), device=salience.device)
        self.last_masking = dict(
            salience=salience.detach(), mask=masking.mask.detach(),
            ratio=ratios.detach())
        if self.training and self.salience_enabled not in self._logged_modes:
            self._logged_modes.add(self.salience_enabled)
            self._log_first_batch(tokens, salience, masking, generator, amr)
        return masking, salience, ratio

    def _log_first_batch(self, tokens: Tensor, salience: Tensor,
                         masking: MaskingResult, generator, amr) -> None:
        """Say once what SBAM does on real data, and warn when the salience
        is too flat to matter (wide embeddings with ``temperature=1``)."""
        logger = MMLogger.get_current_instance()
        L = salience.shape[1]
        masked = masking.mask.sum(1)
        median = float(salience.float().median())
        msg = (f'SBAM first batch of this mode: {generator!r}, '
               f'{self.salience_source} salience (temperature '
               f'{self.temperature:g}) median {median:.3g}; masked tokens '
               f'per image {int(masked.min())}..{int(masked.max())} of {L}')
        if amr is not None:
            msg += f'; {amr!r}'
        logger.info(msg)
        if getattr(generator, 'uses_salience', True) and \
                median < 1e-3:
            norm = float(tokens.detach().float().norm(dim=-1).mean())
            logger.warning(
                f'SBAM: the salience is nearly flat (median {median:.2g}, '
                f'mean token norm {norm:.3g}): X Xᵀ / temperature is '
                'dominated by its diagonal, so masking is close to random '
                'and AMR gives every image about mask_ratio - ratio_var. '
                'This is the paper formula on these weights; a larger '
                f'temperature (e.g. {tokens.shape[-1]}, the embedding '
                'width) spreads it. See README, "Salience scale".')

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
        if mask is None or mask is False:
            # other sizes are fine here (position embedding interpolated)
            check_images(x, self.in_channels, check_finite=False)
            return super().forward(x, mask=None)
        check_images(x, self.in_channels, self.img_size, self.patch_size,
                     check_finite=self.check_finite)
        B = x.shape[0]
        tokens = self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]
        masking, _, _ = self.generate_mask(tokens)
        D = tokens.shape[-1]
        x = torch.gather(
            tokens, 1, masking.ids_keep.unsqueeze(-1).expand(-1, -1, D))
        visible = None
        if masking.padded:
            slots = masking.visible_slots()
            x = x * slots.unsqueeze(-1).to(x.dtype)  # zero the padding
            visible = torch.cat([slots.new_ones(B, 1), slots], dim=1)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(B, -1, -1), x), dim=1)
        with key_padding(self.layers, visible):
            for layer in self.layers:
                x = layer(x)
        x = self.norm1(x)
        return x, masking.mask, masking.ids_restore
