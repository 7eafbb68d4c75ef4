"""Salience-based masking (SBM, ``SBAM.md`` section 2) and random masking.

Both return a :class:`MaskingResult` in MMPretrain's convention (float mask,
1 = masked) and accept one ratio for the batch or one ratio per image. With
per-image ratios, images keep different numbers of tokens; ``ids_keep`` is
then padded to the largest count and ``num_visible`` tells the encoder which
slots are real.
"""
from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor

from mmpretrain.registry import MODELS

__all__ = [
    'MaskingResult', 'salience_guided_masking', 'random_masking',
    'SalienceMaskGenerator', 'RandomMaskGenerator', 'num_visible_tokens'
]

Ratio = Union[float, Tensor]


class MaskingResult(NamedTuple):
    """What a mask generator returns.

    Attributes:
        mask (Tensor): (B, L) float, 1 = masked, 0 = visible.
        ids_restore (Tensor): (B, L) long, for each original position the
            row of ``cat([visible slots, mask tokens])`` that MMPretrain's
            ``MAEPretrainDecoder`` gathers. With equal counts it is the
            usual inverse permutation; with per-image counts every masked
            position points at a mask-token row (several may share one), so
            padded slots never reach the decoder.
        ids_keep (Tensor): (B, K) long, positions of the visible tokens in
            keep order, ``K = num_visible.max()``; slots ``>= num_visible[b]``
            are padding.
        num_visible (Tensor): (B,) long, visible tokens per image.
        padded (bool): Whether images keep different numbers of tokens, so
            that the encoder must hide padded slots.
    """
    mask: Tensor
    ids_restore: Tensor
    ids_keep: Tensor
    num_visible: Tensor
    padded: bool

    def visible_slots(self) -> Tensor:
        """(B, K) bool, True where a slot of ``ids_keep`` holds a token."""
        slots = torch.arange(self.ids_keep.shape[1], device=self.ids_keep.device)
        return slots[None, :] < self.num_visible[:, None]

    def first(self, n: int) -> 'MaskingResult':
        """The masking of the first ``n`` images (e.g. for a picture); the
        slot count ``K`` and ``ids_restore`` stay those of the batch."""
        return MaskingResult(self.mask[:n], self.ids_restore[:n],
                             self.ids_keep[:n], self.num_visible[:n],
                             self.padded)


def num_visible_tokens(num_tokens: int, mask_ratio: Ratio,
                       batch_size: int, device=None,
                       allow_zero: bool = False) -> Tensor:
    """Visible tokens per image, ``int(L * (1 - r))`` as MAE rounds it.

    Args:
        num_tokens (int): Tokens per image ``L``.
        mask_ratio (float | Tensor): One ratio or (B,) ratios, in (0, 1).
        batch_size (int): B.
        device: Device of the result.
        allow_zero (bool): Accept ratio 0 (an image left unmasked, as iBoT
            leaves about half of its images). Defaults to False: MAE-style
            losses average over masked tokens and need some.

    Returns:
        Tensor: (B,) long.
    """
    interval = '[0, 1)' if allow_zero else '(0, 1)'
    if not isinstance(mask_ratio, Tensor):  # checked without a device sync
        if not (0 < mask_ratio < 1 or allow_zero and mask_ratio == 0):
            raise ValueError(
                f'mask_ratio must lie in {interval}, got {mask_ratio}')
        return torch.full((batch_size, ), int(num_tokens * (1 - mask_ratio)),
                          dtype=torch.long, device=device)
    ratio = mask_ratio.detach().to(device=device, dtype=torch.float64)
    if ratio.dim() == 0:
        ratio = ratio.expand(batch_size)
    if ratio.shape != (batch_size, ):
        raise ValueError(f'mask_ratio must be a float or a ({batch_size},) '
                         f'tensor, got shape {tuple(ratio.shape)}')
    above = ratio >= 0 if allow_zero else ratio > 0
    if not bool((above & (ratio < 1)).all()):
        raise ValueError(f'mask_ratio must lie in {interval}, got '
                         f'{ratio.min().item():.4g}..{ratio.max().item():.4g}')
    return torch.floor(num_tokens * (1 - ratio)).long()


def _mask_from_order(ids_shuffle: Tensor, num_visible: Tensor) -> MaskingResult:
    """Keep the first ``num_visible[b]`` positions of each order, mask the rest."""
    B, L = ids_shuffle.shape
    rank = torch.argsort(ids_shuffle, dim=1)  # rank of each position
    visible = rank < num_visible[:, None]
    mask = (~visible).float()
    k_min, k_max = num_visible.aminmax()  # one device sync for both
    k_min, k_max = int(k_min), int(k_max)
    # Masked positions point at a mask-token row (index >= k_max). With equal
    # counts this is the plain inverse permutation, as in MAE.
    ids_restore = torch.where(visible, rank, rank.clamp(min=k_max))
    return MaskingResult(mask, ids_restore, ids_shuffle[:, :k_max].contiguous(),
                         num_visible, k_min != k_max)


def _check_salience(salience: Tensor) -> None:
    if salience.dim() != 2:
        raise ValueError('salience must have shape (B, L), got '
                         f'{tuple(salience.shape)}')


def _check_noise_scale(noise_scale: float) -> None:
    if not isinstance(noise_scale, (int, float)) or not (
            0 <= noise_scale < float('inf')):
        raise ValueError('noise_scale must be a finite number >= 0 (0 masks '
                         'strictly by salience; use RandomMaskGenerator for '
                         f'random masking), got {noise_scale!r}')


def _uniform(shape, generator: Optional[torch.Generator], device) -> Tensor:
    """U[0, 1) noise, drawn on the generator's device when one is given."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator,
                      device=generator.device).to(device)


def _visible_counts(salience: Tensor, mask_ratio: Ratio, allow_zero: bool,
                    num_visible: Optional[Tensor]) -> Tensor:
    """(B,) visible counts from the ratio, or the given counts checked."""
    B, L = salience.shape
    if num_visible is None:
        return num_visible_tokens(L, mask_ratio, B, salience.device,
                                  allow_zero)
    if num_visible.shape != (B, ) or num_visible.is_floating_point():
        raise ValueError(f'num_visible must be a ({B},) integer tensor, got '
                         f'{num_visible.dtype} of shape '
                         f'{tuple(num_visible.shape)}')
    low, high = (int(v) for v in num_visible.aminmax())
    if low < 0 or high > L:
        raise ValueError(f'num_visible must lie in [0, {L}], got '
                         f'{low}..{high}')
    return num_visible.to(device=salience.device, dtype=torch.long)


def salience_guided_masking(salience: Tensor,
                            mask_ratio: Ratio,
                            noise_scale: float = 0.5,
                            generator: Optional[torch.Generator] = None,
                            allow_zero: bool = False,
                            num_visible: Optional[Tensor] = None
                            ) -> MaskingResult:
    """Mask the most salient tokens, with noise for diversity (SBM).

    ``score = ŝ + u``, ``u ~ U(0, noise_scale)``; tokens sorted by ascending
    score, the first ``int(L * (1 - r_b))`` stay visible.

    Args:
        salience (Tensor): Normalised salience ``ŝ`` of shape (B, L).
        mask_ratio (float | Tensor): Ratio in (0, 1), or (B,) per image.
        noise_scale (float): Width of the uniform noise, >= 0. 0 masks
            strictly by salience, ties broken at random. Defaults to 0.5.
        generator (torch.Generator, optional): Source of the noise; the same
            seed gives the same mask. Defaults to torch's global generator.
        allow_zero (bool): Accept ratio 0 (see :func:`num_visible_tokens`).
        num_visible (Tensor, optional): (B,) visible tokens per image in
            [0, L], given as counts (a method's own exact count, e.g. a
            pipeline mask's); then ``mask_ratio`` is not used.

    Returns:
        MaskingResult: mask, ids_restore, ids_keep and num_visible.
    """
    _check_salience(salience)
    _check_noise_scale(noise_scale)
    num_visible = _visible_counts(salience, mask_ratio, allow_zero,
                                  num_visible)
    B, L = salience.shape
    score = salience.detach().float()
    noise = _uniform((B, L), generator, salience.device)
    if noise_scale > 0:
        score = score + noise_scale * noise
        ids_shuffle = torch.argsort(score, dim=1, stable=True)
    else:
        # Strictly by salience; equal salience (e.g. a flat image, all 0)
        # is ordered at random rather than by token index.
        order = torch.argsort(noise, dim=1)
        ids_shuffle = order.gather(
            1, torch.argsort(score.gather(1, order), dim=1, stable=True))
    return _mask_from_order(ids_shuffle, num_visible)


def random_masking(salience: Tensor,
                   mask_ratio: Ratio,
                   generator: Optional[torch.Generator] = None,
                   allow_zero: bool = False,
                   num_visible: Optional[Tensor] = None) -> MaskingResult:
    """MAE's uniform random masking, in the same interface as SBM.

    Only the shape and device of ``salience`` are used.
    """
    _check_salience(salience)
    num_visible = _visible_counts(salience, mask_ratio, allow_zero,
                                  num_visible)
    B, L = salience.shape
    noise = _uniform((B, L), generator, salience.device)
    return _mask_from_order(torch.argsort(noise, dim=1), num_visible)


@MODELS.register_module()
class SalienceMaskGenerator:
    """Registered SBM mask generator: ``generator(salience, ratio)``.

    Args:
        noise_scale (float): Width of the uniform noise added to the
            salience, >= 0. Defaults to 0.5.
    """

    uses_salience = True

    def __init__(self, noise_scale: float = 0.5) -> None:
        _check_noise_scale(noise_scale)
        self.noise_scale = float(noise_scale)

    def __call__(self, salience: Tensor, mask_ratio: Ratio,
                 generator: Optional[torch.Generator] = None,
                 allow_zero: bool = False,
                 num_visible: Optional[Tensor] = None) -> MaskingResult:
        return salience_guided_masking(salience, mask_ratio, self.noise_scale,
                                       generator, allow_zero, num_visible)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(noise_scale={self.noise_scale})'


@MODELS.register_module()
class RandomMaskGenerator:
    """Registered uniform random mask generator (MAE), for warm-up and
    comparison; ignores the salience values."""

    uses_salience = False

    def __call__(self, salience: Tensor, mask_ratio: Ratio,
                 generator: Optional[torch.Generator] = None,
                 allow_zero: bool = False,
                 num_visible: Optional[Tensor] = None) -> MaskingResult:
        return random_masking(salience, mask_ratio, generator, allow_zero,
                              num_visible)

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


def masking_from_mask(mask: Tensor) -> MaskingResult:
    """A :class:`MaskingResult` for a ready 0/1 mask (B, L), 1 = masked,
    whose images may mask different numbers of tokens: visible positions
    first in ascending order, then the masked ones, as
    :func:`_mask_from_order` keeps them."""
    if mask.dim() != 2:
        raise ValueError(f'mask must have shape (B, L), got '
                         f'{tuple(mask.shape)}')
    masked = mask.detach() != 0
    ids_shuffle = torch.argsort(masked.to(torch.uint8), dim=1, stable=True)
    return _mask_from_order(ids_shuffle, (~masked).sum(1))
