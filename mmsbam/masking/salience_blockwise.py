"""Salience-guided blockwise masking, for the BEiT family (BEiT v1/v2, CAE,
MaskFeat), whose stock masks are BEiT's rectangles (``BEiTMaskGenerator``).

BEiT's block process with one change: a block goes where the salience it
newly covers is highest (plus noise), not at a uniformly random corner. See
``docs/method.md``, "Salience-guided blockwise masking".
"""
import math
import numbers
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmpretrain.registry import MODELS
from .generators import (MaskingResult, Ratio, _check_noise_scale, _uniform,
                         masking_from_mask, num_visible_tokens)

__all__ = ['salience_block_masking', 'SalienceBlockMaskGenerator']

MAX_ATTEMPTS = 10  # failed block draws in a row before filling (as BEiT)
_CHUNK = 8  # block draws drawn at once per image (more when used up)
_TIE = 1e-9  # salience means closer than this count as equal (noise 0)


def _grid_shape(num_tokens: int,
                grid: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """(H, W) with ``H * W == L``; a square grid when ``grid`` is None."""
    if grid is None:
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f'grid must be given for a non-square number of '
                             f'tokens, got L={num_tokens}')
        return side, side
    if (not isinstance(grid, (tuple, list)) or len(grid) != 2 or
            not all(isinstance(g, numbers.Integral) and g > 0 for g in grid)
            or grid[0] * grid[1] != num_tokens):
        raise ValueError(f'grid must be two positive integers (H, W) with '
                         f'H * W == L = {num_tokens}, got {grid!r}')
    return int(grid[0]), int(grid[1])


def _check_number(value, key: str, text: str, low: float,
                  strict: bool) -> None:
    """``value`` is a finite real number ``>= low`` (``> low`` if strict)."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not math.isfinite(value) or value < low
            or strict and value == low):
        raise ValueError(f'{key} must be {text}, got {value!r}')


def _check_block_args(min_num_patches, max_num_patches, min_aspect,
                      max_aspect) -> Tuple[float, float]:
    """Check the block arguments; return the log aspect range."""
    _check_number(min_num_patches, 'min_num_patches', 'a finite number >= 1',
                  1, False)
    if max_num_patches is not None:
        _check_number(max_num_patches, 'max_num_patches',
                      'None or a finite number >= 1', 1, False)
        if max_num_patches < min_num_patches:
            raise ValueError('max_num_patches must be None or >= '
                             f'min_num_patches ({min_num_patches}), got '
                             f'{max_num_patches!r}')
    _check_number(min_aspect, 'min_aspect', 'a finite number > 0', 0, True)
    if max_aspect is None:
        max_aspect = 1 / min_aspect
    _check_number(max_aspect, 'max_aspect', 'None or a finite number > 0', 0,
                  True)
    return math.log(min_aspect), math.log(max_aspect)


def _normalized(salience: Tensor) -> np.ndarray:
    """Per-image min-max normalised salience, float64 (B, L); a flat image
    gets zeros."""
    s = salience.detach().to('cpu', torch.float64).numpy()
    low = s.min(axis=1, keepdims=True)
    span = s.max(axis=1, keepdims=True) - low
    return np.where(span > 0, (s - low) / np.where(span > 0, span, 1), 0.0)


def _box_sums(integral: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sums of every h x w window, indexed by top-left corner."""
    return (integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] +
            integral[:-h, :-w])


def _integral(values: np.ndarray) -> np.ndarray:
    """(H + 1, W + 1) integral image with a zero first row and column."""
    out = np.zeros((values.shape[0] + 1, values.shape[1] + 1), values.dtype)
    out[1:, 1:] = values.cumsum(0).cumsum(1)
    return out


def _best(score: np.ndarray, noise: np.ndarray, noise_scale: float) -> int:
    """Flat index of the highest ``score + noise_scale * noise``; with
    ``noise_scale == 0`` equal scores are ranked by the noise."""
    if noise_scale > 0:
        return int(np.argmax(score + noise_scale * noise))
    tied = score >= score.max() - _TIE
    return int(np.argmax(np.where(tied, noise, -1.0)))


class _Draws:
    """The uniform draws of one image, taken from the generator in chunks
    of ``_CHUNK`` block attempts (area, aspect, one noise per corner)."""

    def __init__(self, first: np.ndarray, generator, num_tokens: int):
        self.chunk, self.row = first, 0
        self.generator, self.num_tokens = generator, num_tokens

    def next(self) -> np.ndarray:
        if self.row == len(self.chunk):
            self.chunk = _uniform((_CHUNK, self.num_tokens + 2),
                                  self.generator, 'cpu').double().numpy()
            self.row = 0
        self.row += 1
        return self.chunk[self.row - 1]


def _place_blocks(sal: np.ndarray, count: int, draws: _Draws,
                  fill_noise: np.ndarray, noise_scale: float,
                  min_num_patches: float, max_num_patches: float,
                  log_aspect: Tuple[float, float]) -> np.ndarray:
    """One (H, W) bool mask with exactly ``count`` cells set."""
    H, W = sal.shape
    mask = np.zeros((H, W), dtype=bool)
    remaining, failures, integrals = count, 0, None
    while remaining > 0 and failures < MAX_ATTEMPTS:
        u = draws.next()
        budget = min(remaining, max_num_patches)
        area = min_num_patches + (budget - min_num_patches) * u[0]
        aspect = math.exp(log_aspect[0] +
                          (log_aspect[1] - log_aspect[0]) * u[1])
        h = int(round(math.sqrt(area * aspect)))
        w = int(round(math.sqrt(area / aspect)))
        if not (0 < h < H and 0 < w < W):  # BEiT's size rule
            failures += 1
            continue
        if integrals is None:  # recomputed only after the mask changed
            free = ~mask
            integrals = (_integral(free.astype(np.int64)),
                         _integral(np.where(free, sal, 0.0)))
        new = _box_sums(integrals[0], h, w)  # (H - h + 1, W - w + 1)
        valid = (new > 0) & (new <= budget)
        if not valid.any():
            failures += 1
            continue
        # salience newly hidden per block cell: already masked cells count
        # as 0, so a fresh block on salient cells beats a sliver beside the
        # mask (the mean over new cells alone grows masks cell by cell)
        mean = _box_sums(integrals[1], h, w) / (h * w)
        noise = u[2:].reshape(H, W)[:H - h + 1, :W - w + 1]
        score = np.where(valid, mean, -np.inf)
        top, left = divmod(
            _best(score, np.where(valid, noise, -1.0), noise_scale), W - w + 1)
        mask[top:top + h, left:left + w] = True
        remaining -= int(new[top, left])
        failures, integrals = 0, None
    if remaining > 0:  # fill with the most salient free cells
        flat = mask.reshape(-1)
        free = np.flatnonzero(~flat)
        if noise_scale > 0:
            order = np.argsort(
                -(sal.reshape(-1)[free] + noise_scale * fill_noise[free]),
                kind='stable')
        else:
            order = np.lexsort((-fill_noise[free], -sal.reshape(-1)[free]))
        flat[free[order[:remaining]]] = True
    return mask


def salience_block_masking(
        salience: Tensor,
        num_masked: Union[int, Tensor],
        grid: Optional[Tuple[int, int]] = None,
        min_num_patches: float = 16,
        max_num_patches: Optional[float] = None,
        min_aspect: float = 0.3,
        max_aspect: Optional[float] = None,
        noise_scale: float = 0.5,
        generator: Optional[torch.Generator] = None) -> Tensor:
    """BEiT's rectangular blocks, each placed where the salience is.

    Per image, as ``BEiTMaskGenerator``: while cells remain, draw a block
    area ``U(min_num_patches, min(remaining, max_num_patches))`` and a
    log-uniform aspect ratio (``h < H``, ``w < W``). Of every top-left
    corner whose block newly covers between 1 and that budget of cells, take
    the one with the highest normalised salience newly covered per block
    cell (cells masked before count as 0) plus ``noise_scale * U(0, 1)``. After ``MAX_ATTEMPTS`` failed
    draws in a row the remaining count goes to the most salient free cells
    (plus the same noise), so the count is exact.

    Args:
        salience (Tensor): (B, H, W), or (B, L) with ``grid``; normalised
            per image (min-max) here.
        num_masked (int | Tensor): Cells to mask, one count or (B,), each in
            [0, L].
        grid (tuple[int, int], optional): (H, W) of a (B, L) salience;
            a square grid when None.
        min_num_patches (float): Smallest block area drawn, >= 1. Defaults
            to 16 (BEiT v2's and CAE's setting).
        max_num_patches (float, optional): Largest block area, >= 1; None
            for no limit besides the remaining count.
        min_aspect (float): Smallest aspect ratio, > 0. Defaults to 0.3.
        max_aspect (float, optional): Largest aspect ratio, > 0; defaults to
            ``1 / min_aspect``.
        noise_scale (float): Width of the uniform noise added to each
            corner's score, finite and >= 0: 0 is greedy (ties at random),
            large values approach BEiT's random corners. Defaults to 0.5.
        generator (torch.Generator, optional): Source of all randomness,
            drawn on its device; the same seed gives the same masks.

    Returns:
        Tensor: (B, L) float32 on the device of ``salience``, 1 = masked,
        exactly ``num_masked[b]`` ones per row.
    """
    if salience.dim() == 3:
        B, H, W = salience.shape
        if grid is not None and tuple(grid) != (H, W):
            raise ValueError(f'grid must match a (B, H, W) salience '
                             f'({H}, {W}), got {grid!r}')
    elif salience.dim() == 2:
        B, L = salience.shape
        H, W = _grid_shape(L, grid)
    else:
        raise ValueError('salience must have shape (B, H, W) or (B, L), got '
                         f'{tuple(salience.shape)}')
    L = H * W
    log_aspect = _check_block_args(min_num_patches, max_num_patches,
                                   min_aspect, max_aspect)
    _check_noise_scale(noise_scale)
    counts = torch.as_tensor(num_masked).detach().cpu()
    if counts.dim() == 0:
        counts = counts.expand(B)
    if counts.shape != (B, ) or counts.is_floating_point() or \
            counts.dtype == torch.bool:
        raise ValueError(f'num_masked must be an int or a ({B},) integer '
                         f'tensor, got {counts.dtype} of shape '
                         f'{tuple(counts.shape)}')
    if B and not (0 <= int(counts.min()) and int(counts.max()) <= L):
        raise ValueError(f'num_masked must lie in [0, {L}], got '
                         f'{int(counts.min())}..{int(counts.max())}')
    sal = _normalized(salience.reshape(B, L)).reshape(B, H, W)
    fill_noise = _uniform((B, L), generator, 'cpu').double().numpy()
    first = _uniform((B, _CHUNK, L + 2), generator, 'cpu').double().numpy()
    max_patches = math.inf if max_num_patches is None else max_num_patches
    masks = np.zeros((B, L), dtype=np.float32)
    for b, count in enumerate(counts.tolist()):
        masks[b] = _place_blocks(sal[b], count, _Draws(first[b], generator, L),
                                 fill_noise[b], noise_scale, min_num_patches,
                                 max_patches, log_aspect).reshape(-1)
    return torch.from_numpy(masks).to(salience.device)


@MODELS.register_module()
class SalienceBlockMaskGenerator:
    """Registered salience-guided blockwise mask generator, in the interface
    of ``SalienceMaskGenerator``: ``generator(salience, ratio)``.

    Example:
        >>> gen = MODELS.build(dict(type='SalienceBlockMaskGenerator'))
        >>> masking = gen(torch.rand(2, 196), 0.4)  # 14 x 14 grid, 79 masked

    Args:
        noise_scale (float): Noise on each block position's score, >= 0.
            Defaults to 0.5.
        min_num_patches (float): Smallest block area, >= 1. Defaults to 16.
        max_num_patches (float, optional): Largest block area. Defaults to
            None (no limit besides the count).
        min_aspect (float): Smallest block aspect ratio. Defaults to 0.3.
        max_aspect (float, optional): Largest; ``1 / min_aspect`` if None.
        grid (tuple[int, int], optional): Patch grid (H, W); square if None.
    """

    uses_salience = True

    def __init__(self,
                 noise_scale: float = 0.5,
                 min_num_patches: float = 16,
                 max_num_patches: Optional[float] = None,
                 min_aspect: float = 0.3,
                 max_aspect: Optional[float] = None,
                 grid: Optional[Tuple[int, int]] = None) -> None:
        _check_noise_scale(noise_scale)
        _check_block_args(min_num_patches, max_num_patches, min_aspect,
                          max_aspect)
        if grid is not None:
            if (not isinstance(grid, (tuple, list)) or len(grid) != 2
                    or not all(
                        isinstance(g, numbers.Integral) and g > 0
                        for g in grid)):
                raise ValueError('grid must be None or two positive '
                                 f'integers (H, W), got {grid!r}')
            grid = (int(grid[0]), int(grid[1]))
        self.noise_scale = float(noise_scale)
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches
        self.min_aspect = min_aspect
        self.max_aspect = max_aspect
        self.grid = grid

    def __call__(self,
                 salience: Tensor,
                 mask_ratio: Ratio,
                 generator: Optional[torch.Generator] = None,
                 allow_zero: bool = False,
                 num_visible: Optional[Tensor] = None) -> MaskingResult:
        if salience.dim() != 2:
            raise ValueError('salience must have shape (B, L), got '
                             f'{tuple(salience.shape)}')
        B, L = salience.shape
        if num_visible is None:
            num_visible = num_visible_tokens(L, mask_ratio, B, 'cpu',
                                             allow_zero)
        elif num_visible.shape != (B, ) or num_visible.is_floating_point():
            raise ValueError(f'num_visible must be a ({B},) integer tensor, '
                             f'got {num_visible.dtype} of shape '
                             f'{tuple(num_visible.shape)}')
        elif B:
            low, high = (int(v) for v in num_visible.aminmax())
            if low < 0 or high > L:
                raise ValueError(f'num_visible must lie in [0, {L}], got '
                                 f'{low}..{high}')
        mask = salience_block_masking(salience,
                                      L - num_visible.detach().cpu().long(),
                                      self.grid, self.min_num_patches,
                                      self.max_num_patches, self.min_aspect,
                                      self.max_aspect, self.noise_scale,
                                      generator)
        return masking_from_mask(mask)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(noise_scale={self.noise_scale}, '
                f'min_num_patches={self.min_num_patches}, max_num_patches='
                f'{self.max_num_patches}, min_aspect={self.min_aspect}, '
                f'max_aspect={self.max_aspect}, grid={self.grid})')
