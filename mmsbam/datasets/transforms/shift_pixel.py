"""``ShiftPixel``: CMAE's view crop, a fixed-size crop at a random offset
of at most ``pixel`` pixels from the top-left corner."""
import numpy as np
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS

__all__ = ['ShiftPixel']


@TRANSFORMS.register_module()
class ShiftPixel(BaseTransform):
    """Crop ``size`` x ``size`` pixels at offsets ``dy, dx`` drawn
    uniformly from ``{0, ..., pixel}`` (both ends included, numpy's global
    stream: seeded by MMEngine, saved by ``RandomStateHook``).

    CMAE crops a 256-px "master" image into its online view with
    ``pixel=0`` (always the top-left 224 px) and its target view with
    ``pixel=31`` (a shift of up to about two 16-px patches).

    Example:
        >>> dict(type='ShiftPixel', pixel=31, size=224)

    Args:
        pixel (int): Largest offset, >= 0.
        size (int): Side of the crop, > 0.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.
    """

    def __init__(self, pixel: int, size: int) -> None:
        for key, value, low in (('pixel', pixel, 0), ('size', size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < low:
                raise ValueError(f'ShiftPixel: {key} must be an integer >= '
                                 f'{low}, got {value!r}')
        self.pixel, self.size = pixel, size

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        s, p = self.size, self.pixel
        if h < s + p or w < s + p:
            raise ValueError(
                f'ShiftPixel: a {h}x{w} image cannot hold a {s}-px crop '
                f'shifted by up to {p} px; make the previous crop at least '
                f'{s + p} px')
        dy, dx = np.random.randint(0, p + 1, size=2)
        results['img'] = img[dy:dy + s, dx:dx + s].copy()
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(pixel={self.pixel}, size={self.size})'
