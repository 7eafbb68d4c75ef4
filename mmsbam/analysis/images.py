"""Sample images for the tools: the colour photographs of ``skimage.data``,
Fashion-MNIST's idx files, resizing and normalization.

Every picture is handled as uint8 (H, W, C) until :func:`normalize` turns a
stack of them into the float (N, C, H, W) a model takes. Resizing is PIL's
bicubic filter everywhere (it low-pass filters when it shrinks).
"""
import gzip
import math
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    'PHOTO_NAMES', 'FMNIST_CLASSES', 'FMNIST_FALLBACK_ROOT', 'IMAGENET_MEAN',
    'IMAGENET_STD', 'FMNIST_MEAN', 'FMNIST_STD', 'skimage_photos',
    'read_image', 'read_idx', 'fashion_mnist', 'fashion_mnist_per_class',
    'resize_center_crop',
    'random_resized_crop', 'to_channels', 'normalize'
]

#: Colour photographs shipped with ``skimage.data`` (no download needed on
#: a full install); ``colorwheel`` and ``logo`` are synthetic and left out.
PHOTO_NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket',
               'stereo_motorcycle', 'hubble_deep_field',
               'immunohistochemistry', 'retina')
FMNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
#: Where else to look for the Fashion-MNIST idx files (Debian's package).
FMNIST_FALLBACK_ROOT = '/usr/share/datasets/fashion-mnist'
#: MMPretrain's ImageNet data preprocessor, RGB on 0..255.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: Fashion-MNIST pixel mean and std on 0..255.
FMNIST_MEAN = 72.94
FMNIST_STD = 90.02


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or 0..255) to uint8; uint8 passes through."""
    if img.dtype == np.uint8:
        return img
    img = np.asarray(img, dtype=np.float64)
    img = (img * 255 if img.max() <= 1 else img).clip(0, 255)
    return img.round().astype(np.uint8)


def _skimage_image(name: str) -> np.ndarray:
    """An ``skimage.data`` image as uint8 (a stereo tuple's first image).

    Raises:
        FileNotFoundError: ``skimage.data`` has no image of that name.
    """
    from skimage import data as skdata
    loader = getattr(skdata, name, None)
    if loader is None:
        raise FileNotFoundError(f'{name!r} is neither a file nor an image '
                                'of skimage.data')
    img = loader()
    if isinstance(img, tuple):  # e.g. stereo_motorcycle: (left, right, ...)
        img = img[0]
    return _to_uint8(img)


def skimage_photos(
        names: Sequence[str] = PHOTO_NAMES) -> List[Tuple[str, np.ndarray]]:
    """The colour photographs of ``skimage.data`` that this install has.

    Missing names, images that need a download and grey images are skipped.

    Args:
        names (Sequence[str]): Names of ``skimage.data`` images. Defaults to
            :data:`PHOTO_NAMES`.

    Returns:
        list[tuple[str, np.ndarray]]: ``(name, uint8 (H, W, 3))`` pairs in
        the order of ``names``.
    """
    photos = []
    for name in names:
        try:
            img = _skimage_image(name)
        except Exception:  # unknown name, or needs a download (pooch)
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            photos.append((name, np.ascontiguousarray(img[..., :3])))
    return photos


def read_image(spec: str) -> np.ndarray:
    """An image file, or the name of an ``skimage.data`` image, as uint8
    (H, W) or (H, W, 3)."""
    if osp.isfile(spec):
        from PIL import Image
        with Image.open(spec) as im:
            grey = im.mode in ('L', 'I', 'I;16', '1')
            return np.asarray(im.convert('L' if grey else 'RGB'))
    return _skimage_image(spec)


def read_idx(root: str, name: str) -> np.ndarray:
    """Read the uint8 idx file ``root/name`` (raw, or gzipped ``name.gz``).

    Raises:
        FileNotFoundError: Neither file exists.
        ValueError: The file is not a uint8 idx file of its stated size.
    """
    for path in (osp.join(root, name), osp.join(root, name + '.gz')):
        if osp.isfile(path):
            opener = gzip.open if path.endswith('.gz') else open
            with opener(path, 'rb') as f:
                raw = f.read()
            break
    else:
        raise FileNotFoundError(f'{name} not found in {root}')
    if len(raw) < 4 or raw[:3] != b'\x00\x00\x08':
        raise ValueError(f'{path} is not a uint8 idx file')
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype='>i4', count=ndim, offset=4)
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(dims)):
        raise ValueError(f'{path}: header says {tuple(dims)}, but '
                         f'{len(raw) - offset} bytes follow it')
    data = np.frombuffer(raw, dtype=np.uint8, offset=offset)
    return data.reshape(dims).copy()  # writable


def fashion_mnist(root: str,
                  split: str = 't10k',
                  num: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images and labels of a split, from its idx files.

    Args:
        root (str): Folder with ``{split}-images-idx3-ubyte`` and
            ``{split}-labels-idx1-ubyte`` (raw or ``.gz``); Debian's
            :data:`FMNIST_FALLBACK_ROOT` is tried next.
        split (str): ``'train'`` or ``'t10k'``. Defaults to ``'t10k'``.
        num (int, optional): Keep the first ``num`` images. Defaults to all.

    Returns:
        tuple[np.ndarray, np.ndarray]: uint8 images (N, 28, 28) and uint8
        labels (N,).
    """
    roots = [root] + ([FMNIST_FALLBACK_ROOT]
                      if root != FMNIST_FALLBACK_ROOT else [])
    for folder in roots:
        try:
            images = read_idx(folder, f'{split}-images-idx3-ubyte')
            labels = read_idx(folder, f'{split}-labels-idx1-ubyte')
            break
        except FileNotFoundError:
            continue
    else:
        raise FileNotFoundError(
            f'Fashion-MNIST {split} files not found in {roots}; run '
            'tools/dataset_converters/prepare_fashion_mnist.py')
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f'{root}: {split} images {images.shape} do not '
                         f'match labels {labels.shape}')
    return images[:num], labels[:num]


def fashion_mnist_per_class(root: str, num: int,
                            split: str = 't10k'
                            ) -> Tuple[List[np.ndarray], List[str]]:
    """The first image of each of ``num`` different classes of a split.

    Returns:
        tuple[list, list[str]]: uint8 (28, 28) images and names such as
        ``'#0 Ankle boot'`` (index in the split and class).
    """
    images, labels = fashion_mnist(root, split)
    picked, names, seen = [], [], set()
    for index, label in enumerate(labels.tolist()):
        if label in seen:
            continue
        seen.add(label)
        picked.append(images[index])
        names.append(f'#{index} {FMNIST_CLASSES[label]}')
        if len(picked) == num:
            break
    return picked, names


def _pil(img: np.ndarray):
    from PIL import Image
    return Image.fromarray(np.ascontiguousarray(img))


def _same_layout(out, img: np.ndarray) -> np.ndarray:
    """PIL output back to the channel layout of ``img``."""
    out = np.asarray(out)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


def resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize (PIL) of the short side to ``size``, then the centre
    ``size`` x ``size`` crop. uint8 (H, W) or (H, W, C) in and out."""
    src = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    pil = _pil(src)
    w, h = pil.size
    if (w, h) != (size, size):
        from PIL import Image
        scale = size / min(w, h)
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
        pil = pil.resize(new, Image.BICUBIC)
        left, top = (new[0] - size) // 2, (new[1] - size) // 2
        pil = pil.crop((left, top, left + size, top + size))
    return _same_layout(pil, img)


def random_resized_crop(img: np.ndarray, size: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``RandomResizedCrop(size, scale=(0.2, 1.0))`` as in MAE pre-training
    (aspect 3/4..4/3, 10 tries, else the centre square), bicubic (PIL)."""
    from PIL import Image
    h, w = img.shape[:2]
    for _ in range(10):
        target = h * w * rng.uniform(0.2, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            break
    else:  # fall back to a centre square
        ch = cw = min(h, w)
        top, left = (h - ch) // 2, (w - cw) // 2
    src = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    out = _pil(src).resize((size, size), Image.BICUBIC,
                           box=(left, top, left + cw, top + ch))
    return _same_layout(out, img)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> (H, W, ``channels``): colour to grey
    with ITU-R 601 luma weights, grey repeated to RGB."""
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3]
    if channels == 1 and img.shape[-1] == 3:
        grey = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        img = grey.round().clip(0, 255).astype(np.uint8)[..., None]
    elif channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img


def normalize(imgs: np.ndarray, mean: Sequence[float],
              std: Sequence[float]) -> Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W), ``(x - mean) / std``.

    ``mean`` and ``std`` are per channel on 0..255 (or one number each).
    """
    x = torch.tensor(np.asarray(imgs), dtype=torch.float32)
    x = x.permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s
