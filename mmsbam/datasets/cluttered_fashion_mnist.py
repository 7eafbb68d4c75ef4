"""Cluttered, translated Fashion-MNIST: a garment at a random place and
scale on a larger canvas among fragments of other garments.

Built once, vectorised in numpy, from the stock Fashion-MNIST split (same
labels, same order), deterministic from ``(seed, split)``. Why: on plain
Fashion-MNIST raw pixels are a strong k-NN baseline; translation, scale and
clutter make pixels weak, so pre-training has something to learn. See
``docs/datasets.md``.
"""
import math
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

from mmpretrain.datasets import FashionMNIST
from mmpretrain.registry import DATASETS

__all__ = [
    'ClutteredImages', 'ClutteredFashionMNIST', 'clutter_images',
    'resize_matrix', 'split_generator', 'validate_clutter_args'
]

MAX_CANVAS = 256  # 60,000 canvases of 256 x 256 are 3.9 GB of uint8


class ClutteredImages(NamedTuple):
    """Canvases and where their garments are. Boxes are ``(x0, y0, x1,
    y1)`` in pixels, with exclusive ends.

    Attributes:
        images (np.ndarray): (N, C, C) uint8 canvases.
        masks (np.ndarray): (N, C, C) bool, True where the rescaled garment
            has a non-zero pixel (fragments drawn over it do not clear it).
        boxes (np.ndarray): (N, 4) int64 tight boxes of ``masks``.
        frames (np.ndarray): (N, 4) int64 boxes of the whole rescaled
            source image (a square of side ``round(S * scale)``).
    """
    images: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    frames: np.ndarray


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_))


def validate_clutter_args(source_size: int, canvas: int,
                          scale_range: Sequence[float], num_fragments: int,
                          fragment_size: int) -> Tuple[int, int]:
    """Check the canvas arguments; raise ``ValueError`` naming the bad key
    and its allowed range.

    Returns:
        tuple[int, int]: Smallest and largest garment side in pixels.
    """
    if not _is_int(canvas) or not source_size <= canvas <= MAX_CANVAS:
        raise ValueError(f'canvas must be an int in [{source_size}, '
                         f'{MAX_CANVAS}] (pixels), got {canvas!r}')
    if (not isinstance(scale_range, (tuple, list)) or len(scale_range) != 2
            or not all(isinstance(s, (int, float, np.number))
                       and not isinstance(s, bool) and math.isfinite(s)
                       for s in scale_range)
            or not 0 < scale_range[0] <= scale_range[1]):
        raise ValueError('scale_range must be a pair (low, high) of finite '
                         f'numbers with 0 < low <= high, got {scale_range!r}')
    low = round(source_size * scale_range[0])
    high = round(source_size * scale_range[1])
    if low < 1 or high > canvas:
        raise ValueError(
            f'scale_range must keep the garment side round({source_size} * '
            f'scale) in [1, canvas={canvas}] px, i.e. {1 / source_size:.3g} '
            f'<= scale <= {canvas / source_size:.3g}; got '
            f'{tuple(scale_range)} (sides {low}..{high} px)')
    if not _is_int(num_fragments) or num_fragments < 0:
        raise ValueError(
            f'num_fragments must be an int >= 0, got {num_fragments!r}')
    if not _is_int(fragment_size) or not 1 <= fragment_size <= source_size:
        raise ValueError(f'fragment_size must be an int in [1, '
                         f'{source_size}] (pixels), got {fragment_size!r}')
    return low, high


def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 weights of a linear (triangle) filter,
    widened by the downscale factor (antialiased, as PIL's bilinear); the
    rows sum to 1. ``W @ img @ W.T`` resizes a square image."""
    scale = out_size / in_size
    support = max(1.0, 1.0 / scale)
    centres = (np.arange(out_size) + 0.5) / scale - 0.5
    dist = np.abs(np.arange(in_size)[None, :] - centres[:, None])
    weights = np.clip(1.0 - dist / support, 0.0, None)
    return (weights / weights.sum(1, keepdims=True)).astype(np.float32)


def split_generator(seed: int, test_mode: bool) -> np.random.Generator:
    """The generator of one split: a function of ``(seed, split)`` only."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f'seed must be an int >= 0, got {seed!r}')
    return np.random.default_rng([int(seed), int(test_mode)])


def clutter_images(images: np.ndarray, rng: np.random.Generator,
                   canvas: int = 64,
                   scale_range: Sequence[float] = (0.8, 1.2),
                   num_fragments: int = 6,
                   fragment_size: int = 8) -> ClutteredImages:
    """Place each image, rescaled, at a random position on a blank canvas
    and draw fragments of other images over the canvas.

    Every random number is drawn up front, in a fixed order, so the result
    depends only on ``images`` and the state of ``rng``. Fragments are
    composited with a pixelwise maximum (they may overlap the garment).

    Args:
        images (np.ndarray): (N, S, S) uint8 source images, N >= 2.
        rng (np.random.Generator): The only source of randomness.
        canvas (int): Side of the square canvas (pixels).
        scale_range (Sequence[float]): The garment's side is
            ``round(S * u)``, ``u ~ U(low, high)``.
        num_fragments (int): Fragments per canvas.
        fragment_size (int): Side of a fragment (pixels), cut at a random
            place of a random other image, unscaled.

    Returns:
        ClutteredImages: Canvases, garment masks, boxes and frames.
    """
    if images.ndim != 3 or images.shape[1] != images.shape[2] \
            or images.dtype != np.uint8 or len(images) < 2:
        raise ValueError('images must be (N, S, S) uint8 with N >= 2, got '
                         f'{images.shape} {images.dtype}')
    num, size = len(images), images.shape[1]
    validate_clutter_args(size, canvas, scale_range, num_fragments,
                          fragment_size)
    # all draws up front, in a fixed order
    sides = np.rint(size * rng.uniform(*scale_range, size=num)).astype(int)
    corner = rng.random((num, 2))  # garment top-left, as a fraction
    frag_src = rng.integers(0, num - 1, size=(num_fragments, num))
    frag_src += frag_src >= np.arange(num)  # never the image's own garment
    frag_cut = rng.integers(0, size - fragment_size + 1,
                            size=(num_fragments, num, 2))
    frag_pos = rng.integers(0, canvas - fragment_size + 1,
                            size=(num_fragments, num, 2))

    layer = np.zeros((num, canvas, canvas), np.uint8)  # the garments
    flat = layer.reshape(-1)  # written through flat indices (fast)
    top_left = np.floor(corner * (canvas - sides[:, None] + 1)).astype(int)
    for side in np.unique(sides):
        idx = np.flatnonzero(sides == side)
        weights = resize_matrix(size, side)
        resized = weights @ images[idx].astype(np.float32) @ weights.T
        flat[_block_indices(idx, top_left[idx], side, canvas)] = \
            np.clip(np.rint(resized), 0, 255).astype(np.uint8)

    masks = layer > 0
    boxes = _tight_boxes(masks)
    # fragments over the garments, in place
    span = np.arange(fragment_size)
    every = np.arange(num)
    for src, cut, pos in zip(frag_src, frag_cut, frag_pos):
        fragment = images[src[:, None, None],
                          (cut[:, 0, None] + span)[:, :, None],
                          (cut[:, 1, None] + span)[:, None, :]]
        where = _block_indices(every, pos, fragment_size, canvas)
        flat[where] = np.maximum(flat[where], fragment)
    frames = np.concatenate([top_left[:, ::-1], top_left[:, ::-1] +
                             sides[:, None]], axis=1).astype(np.int64)
    return ClutteredImages(layer, masks, boxes, frames)


def _block_indices(images: np.ndarray, top_left: np.ndarray, side: int,
                   canvas: int) -> np.ndarray:
    """(n, side, side) flat indices into (N, canvas, canvas) of the square
    blocks of ``side`` at ``top_left`` (n, 2) (row, column) of ``images``
    (n,)."""
    span = np.arange(side)
    rows = (top_left[:, 0, None] + span)[:, :, None]
    cols = (top_left[:, 1, None] + span)[:, None, :]
    return (images[:, None, None] * canvas + rows) * canvas + cols


def _tight_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) ``(x0, y0, x1, y1)`` with exclusive ends of each mask's True
    pixels; ``(0, 0, 0, 0)`` for an empty mask."""
    boxes = np.zeros((len(masks), 4), np.int64)
    for axis, (lo, hi) in ((1, (0, 2)), (2, (1, 3))):
        # axis 1 collapses rows -> columns (x), axis 2 -> rows (y)
        hit = masks.any(axis)
        length = hit.shape[1]
        first = hit.argmax(1)
        last = length - hit[:, ::-1].argmax(1)
        some = hit.any(1)
        boxes[:, lo] = np.where(some, first, 0)
        boxes[:, hi] = np.where(some, last, 0)
    return boxes


@DATASETS.register_module()
class ClutteredFashionMNIST(FashionMNIST):
    """Fashion-MNIST with each garment rescaled, placed at random on a
    larger canvas and surrounded by fragments of other garments.

    The stock :class:`FashionMNIST` reads the split (its ``test_mode``
    picks the files), so labels and order are the stock ones; the canvases
    are built once, when the dataset loads, from ``(seed, test_mode)``
    alone: the same on every process, worker and run. Each data info also
    has ``garment_box`` ((4,) int64 ``(x0, y0, x1, y1)``, exclusive ends)
    and ``garment_mask`` ((canvas, canvas) bool), in the coordinates of the
    un-augmented canvas.

    Example:
        >>> train_dataloader = dict(dataset=dict(
        ...     type='ClutteredFashionMNIST', data_root='data/fashion_mnist',
        ...     test_mode=False, canvas=64, seed=0, pipeline=[...]))

    Args:
        data_root (str): Folder of the four un-gzipped idx files.
        canvas (int): Side of the square canvas, in [28 * scale, 256].
            Defaults to 64.
        scale_range (Sequence[float]): Garment side ``round(28 * u)``,
            ``u ~ U(low, high)``. Defaults to (0.8, 1.2): 22 to 34 px.
        num_fragments (int): Distractor fragments per canvas, >= 0.
            Defaults to 6.
        fragment_size (int): Fragment side in [1, 28] px. Defaults to 8.
        seed (int): Seed of the canvases, >= 0; the two splits draw from
            different streams. Defaults to 0.
        split (str, optional): ``'train'`` or ``'test'``; must agree with
            ``test_mode``, which picks the files. Defaults to None (follow
            ``test_mode``).
        test_mode (bool): Read the test files. Defaults to False.
        **kwargs: The other arguments of :class:`FashionMNIST`
            (``pipeline``, ``indices``, ``download`` ...).
    """

    def __init__(self,
                 data_root: str = '',
                 canvas: int = 64,
                 scale_range: Sequence[float] = (0.8, 1.2),
                 num_fragments: int = 6,
                 fragment_size: int = 8,
                 seed: int = 0,
                 split: Optional[str] = None,
                 test_mode: bool = False,
                 **kwargs):
        if split is None:
            split = 'test' if test_mode else 'train'
        if split != ('test' if test_mode else 'train'):
            raise ValueError(
                f'split={split!r} disagrees with test_mode={test_mode}: the '
                'files are those of test_mode (as in the stock FashionMNIST)'
                "; give split='test' with test_mode=True, split='train' with"
                ' test_mode=False, or leave split out')
        validate_clutter_args(28, canvas, scale_range, num_fragments,
                              fragment_size)
        split_generator(seed, False)  # validates the seed
        self.canvas = canvas
        self.scale_range = tuple(scale_range)
        self.num_fragments = num_fragments
        self.fragment_size = fragment_size
        self.seed = seed
        super().__init__(data_root=data_root, split=split,
                         test_mode=test_mode, **kwargs)

    def load_data_list(self):
        """The stock split, each image replaced by its cluttered canvas."""
        infos = super().load_data_list()
        cluttered = clutter_images(
            np.stack([info['img'] for info in infos]),
            split_generator(self.seed, self.test_mode), self.canvas,
            self.scale_range, self.num_fragments, self.fragment_size)
        # 1 bit per pixel in memory; unpacked in get_data_info
        packed = np.packbits(cluttered.masks.reshape(len(infos), -1), axis=1)
        for i, info in enumerate(infos):
            info.update(img=cluttered.images[i],
                        garment_box=cluttered.boxes[i],
                        garment_mask=packed[i])
        return infos

    def get_data_info(self, idx: int) -> dict:
        """The data info of ``idx`` with its garment mask unpacked."""
        info = super().get_data_info(idx)
        info['garment_mask'] = np.unpackbits(
            info['garment_mask'], count=self.canvas**2).reshape(
                self.canvas, self.canvas).astype(bool)
        return info

    def extra_repr(self) -> list:
        """Stock lines plus the canvas arguments."""
        return super().extra_repr() + [
            f'Canvas: \t{self.canvas}', f'Scale range: \t{self.scale_range}',
            f'Fragments: \t{self.num_fragments} x {self.fragment_size} px',
            f'Seed: \t{self.seed}'
        ]
