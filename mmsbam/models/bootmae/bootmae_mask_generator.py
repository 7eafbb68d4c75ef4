"""``BootMAEMaskGenerator``: BootMAE's masks, made model-side.

The official code (LightDXY/BootMAE ``d604b18``) masks in two places: the
data loader draws a BEiT-style block mask of exactly ``num_block`` cells per
image (``masking_generator.py``), then the training loop
(``utils.mask_to_index``) orders the cells "unmasked first, in random
order", rolls that order by ``k = randint(0, max_roll)`` once per batch and
keeps the first ``L - num_masked`` cells visible. The roll exposes ``k``
block cells and masks ``k`` more random ones, so every image masks exactly
``num_masked`` cells: ``num_block - k`` of its blocks plus
``num_masked - num_block + k`` random cells.

Here both steps run in the model, on the whole batch, so that the per-batch
roll exists at all (a per-image pipeline transform cannot draw it), the
SBAM twin can replace the whole masking model-side, and every draw comes
from the two generators that MMEngine seeds and ``RandomStateHook`` saves:
Python's :mod:`random` (blocks and the roll, as in the official code) and
torch's global generator (the float32 ordering noise, as in the official
``torch.rand``). Order of the draws per batch: the blocks of every image,
then the noise, then ``k``.
"""
import math
import numbers
import random
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mmpretrain.registry import MODELS

__all__ = ['BootMAEMaskGenerator', 'bootmae_block_mask', 'rolled_visible']

#: Block draws before a grid is declared too small (the official code loops
#: forever; on 14 x 14 a block is kept within a few draws).
MAX_DRAWS = 10000


def bootmae_block_mask(height: int, width: int, num_block: int,
                       min_block: int, max_block: int,
                       log_aspect: Sequence[float]) -> np.ndarray:
    """One (H, W) bool block mask of exactly ``num_block`` cells.

    BEiT's block drawing as the official ``MaskingGenerator``: a block of
    area ``U(min_block, min(remaining, max_block))`` and log-uniform aspect
    is placed with inclusive ``randint`` corners and kept only if it adds
    between 1 and ``remaining`` cells; draws repeat until one is kept.

    Args:
        height (int): Grid height H.
        width (int): Grid width W.
        num_block (int): Cells to mask, in [0, H * W].
        min_block (int): Smallest block area drawn.
        max_block (int): Largest block area drawn.
        log_aspect (Sequence[float]): (log min, log max) aspect ratio.

    Returns:
        np.ndarray: (H, W) bool, True = masked, exactly ``num_block`` True.
    """
    mask = np.zeros((height, width), dtype=bool)
    count = 0
    while count < num_block:
        budget = min(num_block - count, max_block)
        for _ in range(MAX_DRAWS):  # official: `while True`
            area = random.uniform(min_block, budget)
            aspect = math.exp(random.uniform(*log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if not (w < width and h < height):
                continue
            top = random.randint(0, height - h)
            left = random.randint(0, width - w)
            block = mask[top:top + h, left:left + w]
            added = h * w - int(block.sum())
            if 0 < added <= budget:
                block[...] = True
                count += added
                break
        else:
            raise ValueError(
                f'BootMAEMaskGenerator: no block of area {min_block}..'
                f'{budget} fits a {height} x {width} grid in {MAX_DRAWS} '
                'draws; lower min_block or num_block')
    return mask


def rolled_visible(block_masks: Tensor, noise: Tensor, roll: int,
                   num_visible: int) -> Tensor:
    """The official ordering and roll: cells not in a block first (random
    order from ``noise``), then block cells; the order rolled right by
    ``roll``; the first ``num_visible`` cells stay visible.

    Args:
        block_masks (Tensor): (B, L) bool block masks.
        noise (Tensor): (B, L) U[0, 1) noise.
        roll (int): The per-batch roll ``k``.
        num_visible (int): Visible cells per image.

    Returns:
        Tensor: (B, L) bool, True = masked.
    """
    order = torch.argsort(block_masks.float() - noise, dim=1)
    order = order.roll(roll, dims=1)
    mask = torch.ones_like(block_masks)
    mask.scatter_(1, order[:, :num_visible], False)
    return mask


def _check_int(name: str, value, low: int, high: Optional[int] = None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
            or value < low or (high is not None and value > high):
        bound = f'[{low}, {high}]' if high is not None else f'>= {low}'
        raise ValueError(f'BootMAEMaskGenerator: {name} must be an integer '
                         f'in {bound}, got {value!r}')
    return int(value)


@MODELS.register_module()
class BootMAEMaskGenerator(nn.Module):
    """BootMAE's masks: ``num_block`` block cells, filled up to
    ``num_masked`` with random cells, with the per-batch roll.

    Example:
        >>> gen = MODELS.build(dict(type='BootMAEMaskGenerator'))
        >>> masks = gen(batch_size=2, height=14, width=14)  # (2, 196) bool
        >>> masks.sum(1)
        tensor([147, 147])

    Args:
        num_block (int): Cells masked by blocks (official
            ``--num_mask_patches`` 120 on 14 x 14).
        num_masked (int): Cells masked in all (``--mask_num`` 147), at
            least ``num_block``.
        min_block (int): Smallest block area (``--min_mask_patches_per_block``
            16).
        max_block (int): Largest block area (``--max_mask_patches_per_block``
            60).
        aspect_ratio (Sequence[float]): Block aspect range (0.3, 1 / 0.3).
        max_roll (int): The roll ``k`` is ``randint(0, max_roll)``, drawn
            once per batch (official 3); at most ``num_block`` and at most
            the visible count.
    """

    def __init__(self,
                 num_block: int = 120,
                 num_masked: int = 147,
                 min_block: int = 16,
                 max_block: int = 60,
                 aspect_ratio: Sequence[float] = (0.3, 1 / 0.3),
                 max_roll: int = 3) -> None:
        super().__init__()
        self.num_block = _check_int('num_block', num_block, 0)
        self.num_masked = _check_int('num_masked', num_masked, num_block)
        self.min_block = _check_int('min_block', min_block, 1)
        self.max_block = _check_int('max_block', max_block, min_block)
        self.max_roll = _check_int('max_roll', max_roll, 0, num_block)
        if len(aspect_ratio) != 2 or not 0 < aspect_ratio[0] <= \
                aspect_ratio[1]:
            raise ValueError('BootMAEMaskGenerator: aspect_ratio must be '
                             f'(min, max) with 0 < min <= max, got '
                             f'{aspect_ratio!r}')
        self.log_aspect = (math.log(aspect_ratio[0]),
                           math.log(aspect_ratio[1]))

    def extra_repr(self) -> str:
        return (f'num_block={self.num_block}, num_masked={self.num_masked}, '
                f'block area {self.min_block}..{self.max_block}, '
                f'max_roll={self.max_roll}')

    def check_grid(self, num_cells: int) -> None:
        """Refuse a grid too small for the counts."""
        visible = num_cells - self.num_masked
        if visible < 1 or self.max_roll > visible:
            raise ValueError(
                f'BootMAEMaskGenerator: num_masked={self.num_masked} and '
                f'max_roll={self.max_roll} need a grid of more than '
                f'num_masked + max_roll cells; got {num_cells}')

    def block_masks(self, batch_size: int, height: int,
                    width: int) -> Tensor:
        """(B, H * W) bool block masks, ``num_block`` cells each."""
        masks = [
            bootmae_block_mask(height, width, self.num_block, self.min_block,
                               self.max_block, self.log_aspect)
            for _ in range(batch_size)
        ]
        return torch.from_numpy(
            np.stack(masks).reshape(batch_size, height * width))

    def forward(self, batch_size: int, height: int, width: int,
                device: Optional[torch.device] = None) -> Tensor:
        """Masks of one batch.

        Args:
            batch_size (int): B.
            height (int): Patch-grid height H.
            width (int): Patch-grid width W.
            device (torch.device, optional): Device of the result.

        Returns:
            Tensor: (B, H * W) bool, True = masked, ``num_masked`` per row.
        """
        L = height * width
        self.check_grid(L)
        blocks = self.block_masks(batch_size, height, width)
        noise = torch.rand(batch_size, L)
        roll = random.randint(0, self.max_roll)
        mask = rolled_visible(blocks, noise, roll, L - self.num_masked)
        return mask.to(device)
