"""iBoT's blockwise mask generator, made model-side.

iBoT (``loader.py``, ``ImageFolderMask``) draws one mask per crop in the
data loader: a masking ratio from a mixture (``pred_ratio`` +-
``pred_ratio_var``, one entry chosen per crop), then BEiT-style rectangular
blocks on the patch grid until the ratio is reached. Here the same
algorithm runs in the model on a (B, H, W) grid, so that the epoch-dependent
``pred_start_epoch`` reaches it (a dataset-side ratio would not reach
persistent workers, and MMPretrain's ``MultiView`` drops extra keys).

Randomness comes from Python's :mod:`random` module, as in the official
code: MMEngine's ``set_random_seed`` seeds it and mmsbam's
``RandomStateHook`` saves it in checkpoints. Differences from MMPretrain's
``BEiTMaskGenerator``: a float target that may be fallen short of (never
exceeded), a minimum block area of ``(min(H, W) // 3) ** 2`` and block
corners drawn with an inclusive upper bound, so blocks reach the bottom and
right edges.
"""
import math
import numbers
import random
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import MessageHub
from torch import Tensor, nn

from mmpretrain.registry import MODELS

__all__ = ['iBOTBlockMaskGenerator', 'ibot_mask_ratios']

FloatOrSeq = Union[float, Sequence[float]]
PRED_SHAPES = ('block', 'rand')
MAX_ATTEMPTS = 10  # block draws per round before a round counts as empty


def _as_float_list(value: FloatOrSeq, key: str) -> List[float]:
    """A float or a non-empty sequence of floats as a list of floats."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [float(value)]
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence)
            or len(value) == 0 or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool)
                for v in value)):
        raise ValueError(f'{key} must be a float or a non-empty sequence of '
                         f'floats, got {value!r}')
    return [float(v) for v in value]


def _ratio_table(pred_ratio: FloatOrSeq,
                 pred_ratio_var: FloatOrSeq) -> List[Tuple[float, float]]:
    """(mean, half-width) pairs, checked; a single ``pred_ratio_var`` is
    used for every entry of ``pred_ratio``, as in the official code."""
    means = _as_float_list(pred_ratio, 'pred_ratio')
    variances = _as_float_list(pred_ratio_var, 'pred_ratio_var')
    if len(variances) == 1:
        variances = variances * len(means)
    if len(variances) != len(means):
        raise ValueError(
            'pred_ratio_var must be one value or have as many entries as '
            f'pred_ratio ({len(means)}), got {len(variances)}')
    for mean, var in zip(means, variances):
        if not 0.0 <= mean <= 1.0:
            raise ValueError(f'pred_ratio entries must lie in [0, 1], got '
                             f'{mean}')
        if not 0.0 <= var <= min(mean, 1.0 - mean):
            raise ValueError(
                'pred_ratio_var entries must lie in [0, min(r, 1 - r)] for '
                f'their pred_ratio r (the ratio stays in [0, 1]), got {var} '
                f'for pred_ratio {mean}')
    return list(zip(means, variances))


@MODELS.register_module()
class iBOTBlockMaskGenerator(nn.Module):
    """iBoT's blockwise (or random) patch masks, one ratio draw per image.

    A port of ``ImageFolderMask`` of the official iBoT code
    (``bytedance/ibot``, ``loader.py``) that works on a whole batch. Per
    image, :meth:`ratio` draws ``r``, then :meth:`block_mask` masks at most
    ``r * H * W`` cells with rectangles (BEiT style). With the default
    mixture ``(0, 0.3) +- (0, 0.2)`` about half of the images get no mask
    and the others ``r ~ U(0.1, 0.5)``.

    Example:
        >>> import random
        >>> from mmpretrain.registry import MODELS
        >>> gen = MODELS.build(dict(type='iBOTBlockMaskGenerator'))
        >>> random.seed(0)
        >>> masks = gen(batch_size=4, height=14, width=14, epoch=0)
        >>> masks.shape, masks.dtype
        (torch.Size([4, 14, 14]), torch.bool)

    Args:
        pred_ratio (float | Sequence[float]): Mean masking ratio, or one per
            mixture entry. Entries in [0, 1]. Defaults to ``(0.0, 0.3)``
            (the README recipe; the official argparse default is ``0.3``).
        pred_ratio_var (float | Sequence[float]): Half-width of the uniform
            draw around each ``pred_ratio`` entry (0: no draw); one value or
            one per entry, each at most ``min(r, 1 - r)``. Defaults to
            ``(0.0, 0.2)``.
        pred_aspect_ratio (Sequence[float]): Range of the block aspect
            ratio, drawn log-uniformly. Two positive numbers. Defaults to
            ``(0.3, 1 / 0.3)``.
        pred_shape (str): ``'block'`` (rectangles) or ``'rand'`` (exactly
            ``int(r * H * W)`` uniformly random cells). Defaults to
            ``'block'``.
        pred_start_epoch (int): Epochs with no mask at all (ratio 0) at the
            start of training. Defaults to 0.
    """

    def __init__(self,
                 pred_ratio: FloatOrSeq = (0.0, 0.3),
                 pred_ratio_var: FloatOrSeq = (0.0, 0.2),
                 pred_aspect_ratio: Sequence[float] = (0.3, 1 / 0.3),
                 pred_shape: str = 'block',
                 pred_start_epoch: int = 0) -> None:
        super().__init__()
        self.ratio_table = _ratio_table(pred_ratio, pred_ratio_var)
        aspect = _as_float_list(pred_aspect_ratio, 'pred_aspect_ratio')
        if len(aspect) != 2 or not all(0 < a < math.inf for a in aspect):
            raise ValueError('pred_aspect_ratio must be two positive finite '
                             f'numbers (min, max), got {pred_aspect_ratio!r}')
        self.log_aspect_ratio = (math.log(aspect[0]), math.log(aspect[1]))
        if pred_shape not in PRED_SHAPES:
            raise ValueError(f'pred_shape must be one of {PRED_SHAPES}, got '
                             f'{pred_shape!r}')
        self.pred_shape = pred_shape
        if (not isinstance(pred_start_epoch, numbers.Integral)
                or isinstance(pred_start_epoch, bool)
                or pred_start_epoch < 0):
            raise ValueError('pred_start_epoch must be an integer >= 0, got '
                             f'{pred_start_epoch!r}')
        self.pred_start_epoch = int(pred_start_epoch)

    def extra_repr(self) -> str:
        return (f'ratio_table={self.ratio_table}, pred_shape='
                f'{self.pred_shape!r}, pred_start_epoch='
                f'{self.pred_start_epoch}')

    @staticmethod
    def current_epoch() -> int:
        """The training epoch that MMEngine's ``RuntimeInfoHook`` publishes
        in the current ``MessageHub`` (0 outside a run)."""
        return int(MessageHub.get_current_instance().get_info('epoch', 0))

    def ratio(self, epoch: Optional[int] = None) -> float:
        """One masking ratio (the official ``get_pred_ratio``).

        Each mixture entry ``(m, v)`` becomes ``U(m - v, m + v)`` (or ``m``
        when ``v`` is 0), then one entry is chosen uniformly. Before
        ``pred_start_epoch`` the ratio is 0 and nothing is drawn.

        Args:
            epoch (int, optional): The epoch; read from MMEngine's
                ``MessageHub`` when None.

        Returns:
            float: The ratio, in [0, 1].
        """
        if epoch is None:
            epoch = self.current_epoch()
        if epoch < self.pred_start_epoch:
            return 0.0
        draws = [
            random.uniform(mean - var, mean + var) if var > 0 else mean
            for mean, var in self.ratio_table
        ]
        return draws[0] if len(draws) == 1 else random.choice(draws)

    def block_mask(self, height: int, width: int, ratio: float) -> np.ndarray:
        """One (H, W) bool mask with at most ``ratio * H * W`` cells set.

        Args:
            height (int): Grid height H.
            width (int): Grid width W.
            ratio (float): Masking ratio in [0, 1].

        Returns:
            np.ndarray: (H, W) bool, True = masked.
        """
        if not (isinstance(height, numbers.Integral) and height > 0
                and isinstance(width, numbers.Integral) and width > 0):
            raise ValueError('height and width must be positive integers, '
                             f'got {height!r} and {width!r}')
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f'ratio must lie in [0, 1], got {ratio}')
        high = ratio * height * width
        if self.pred_shape == 'rand':
            mask = np.zeros(height * width, dtype=bool)
            mask[random.sample(range(height * width), int(high))] = True
            return mask.reshape(height, width)
        mask = np.zeros((height, width), dtype=bool)
        count = 0
        while count < high:
            added = self._add_block(mask, high - count)
            if added == 0:
                break
            count += added
        return mask

    def _add_block(self, mask: np.ndarray, budget: float) -> int:
        """Try up to ``MAX_ATTEMPTS`` random rectangles; set the first one
        that adds between 1 and ``budget`` new cells. Returns the cells
        added (0 when every attempt failed)."""
        height, width = mask.shape
        low = (min(height, width) // 3)**2
        for _ in range(MAX_ATTEMPTS):
            area = random.uniform(low, budget)
            aspect = math.exp(random.uniform(*self.log_aspect_ratio))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if h >= height or w >= width:
                continue
            top = random.randint(0, height - h)  # inclusive upper bound
            left = random.randint(0, width - w)
            block = mask[top:top + h, left:left + w]
            added = h * w - int(block.sum())
            if 0 < added <= budget:
                block[...] = True
                return added
        return 0

    def forward(self,
                batch_size: int,
                height: int,
                width: int,
                epoch: Optional[int] = None,
                device: Optional[torch.device] = None) -> Tensor:
        """Masks for a batch: one ratio draw and one mask per image.

        Args:
            batch_size (int): Number of images B.
            height (int): Patch-grid height H.
            width (int): Patch-grid width W.
            epoch (int, optional): The epoch; read from MMEngine's
                ``MessageHub`` when None.
            device (torch.device, optional): Device of the result.

        Returns:
            Tensor: (B, H, W) bool, True = masked.
        """
        if epoch is None:
            epoch = self.current_epoch()
        masks = [
            self.block_mask(height, width, self.ratio(epoch))
            for _ in range(batch_size)
        ]
        if not masks:
            return torch.zeros(0, height, width, dtype=torch.bool,
                               device=device)
        return torch.from_numpy(np.stack(masks)).to(device)


def ibot_mask_ratios(generator: iBOTBlockMaskGenerator,
                     batch_size: int,
                     epoch: Optional[int] = None,
                     device: Optional[torch.device] = None) -> Tensor:
    """One :meth:`iBOTBlockMaskGenerator.ratio` draw per image: iBoT's ratio
    policy for masks that are not blocks (e.g. salience-based ones).

    Args:
        generator (iBOTBlockMaskGenerator): Holds the ratio mixture and
            ``pred_start_epoch``.
        batch_size (int): Number of images B.
        epoch (int, optional): The epoch; read from MMEngine's
            ``MessageHub`` when None.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: (B,) float32 ratios in [0, 1] (0 = leave the image unmasked).
    """
    if epoch is None:
        epoch = generator.current_epoch()
    ratios = [generator.ratio(epoch) for _ in range(batch_size)]
    return torch.tensor(ratios, dtype=torch.float32, device=device)
