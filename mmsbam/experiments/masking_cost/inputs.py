"""Input batches of the masking-cost benchmark: the colour photos of
``skimage.data``, MAE-style random-resized crops and flips drawn from a
seeded ``torch.Generator``, ImageNet normalization."""
import math
from typing import List, Sequence

import torch
from torch import Tensor, nn

from ...analysis.images import IMAGENET_MEAN, IMAGENET_STD, skimage_photos

__all__ = ['PHOTOS', 'photo_tensors', 'random_resized_crop', 'make_batch']

#: The photos, in the order the batches index them.
PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'immunohistochemistry',
          'hubble_deep_field', 'retina', 'stereo_motorcycle')


def photo_tensors(names: Sequence[str] = PHOTOS) -> List[Tensor]:
    """The photos of ``skimage.data`` this install has (none without
    scikit-image), as (3, H, W) float in [0, 1].

    Args:
        names (Sequence[str]): ``skimage.data`` names. Defaults to
            :data:`PHOTOS`.

    Returns:
        list[Tensor]: One tensor per photo found, in the order of ``names``.
    """
    return [
        torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.
        for _, image in skimage_photos(names)
    ]


def random_resized_crop(image: Tensor, size: int,
                        gen: torch.Generator) -> Tensor:
    """MAE's ``RandomResizedCrop`` (scale 0.2-1, aspect 3/4-4/3, 10 tries,
    else the centre square), bicubic, then a horizontal flip with p = 0.5.

    Args:
        image (Tensor): (3, H, W) float in [0, 1].
        size (int): Side of the square output.
        gen (torch.Generator): Source of every random draw.

    Returns:
        Tensor: (3, size, size) float in [0, 1].
    """
    _, H, W = image.shape
    area = H * W
    for _ in range(10):
        scale = 0.2 + 0.8 * torch.rand((), generator=gen).item()
        log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * \
            torch.rand((), generator=gen).item()
        ratio = math.exp(log_ratio)
        w = int(round(math.sqrt(area * scale * ratio)))
        h = int(round(math.sqrt(area * scale / ratio)))
        if 0 < w <= W and 0 < h <= H:
            top = int(torch.randint(0, H - h + 1, (), generator=gen))
            left = int(torch.randint(0, W - w + 1, (), generator=gen))
            break
    else:  # central crop
        h = w = min(H, W)
        top, left = (H - h) // 2, (W - w) // 2
    crop = image[:, top:top + h, left:left + w]
    crop = nn.functional.interpolate(
        crop[None], size=(size, size), mode='bicubic',
        align_corners=False)[0].clamp_(0, 1)
    if torch.rand((), generator=gen).item() < 0.5:
        crop = crop.flip(-1)
    return crop


def make_batch(photos: List[Tensor], batch_size: int, size: int,
               gen: torch.Generator) -> Tensor:
    """A normalized (B, 3, size, size) batch of random crops of ``photos``,
    or of uniform noise when ``photos`` is empty.

    Args:
        photos (list[Tensor]): From :func:`photo_tensors`.
        batch_size (int): Images in the batch.
        size (int): Image side.
        gen (torch.Generator): Source of every random draw.

    Returns:
        Tensor: Images normalized with the ImageNet mean and std.
    """
    if photos:
        idx = torch.randint(0, len(photos), (batch_size, ), generator=gen)
        images = torch.stack(
            [random_resized_crop(photos[i], size, gen) for i in idx.tolist()])
    else:
        images = torch.rand(batch_size, 3, size, size, generator=gen)
    # the 0..255 constants on 0..1, rounded to float32 as 0.485 etc. are
    mean = (torch.tensor(IMAGENET_MEAN, dtype=torch.float64) / 255).float()
    std = (torch.tensor(IMAGENET_STD, dtype=torch.float64) / 255).float()
    return (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
