"""``check_images`` and ``check_binary_mask``: what is wrong with a batch
of images or of pipeline masks, and the fix.

Cheap Python shape checks, plus one reduction (and on a GPU one device
sync) for the value tests, so that a bad batch fails at the SBAM module
with its sizes and a fix instead of deep inside MMPretrain.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ['check_images', 'check_binary_mask']


def _channels_fix(channels: int, in_channels: int) -> str:
    """How to make ``channels``-channel images fit an ``in_channels`` model."""
    if channels == 1 and in_channels == 3:
        return ('convert the images to RGB in the pipeline (e.g. '
                "LoadImageFromFile(color_type='color')), or train a "
                'grayscale model: patch_cfg.in_channels=1 (and the '
                "neck's in_chans, the head's in_channels, one-value "
                'data_preprocessor mean/std, to_rgb=False)')
    if channels == 3 and in_channels == 1:
        return ('load the images as grayscale in the pipeline (e.g. '
                "LoadImageFromFile(color_type='grayscale')), or build an "
                'RGB model: patch_cfg.in_channels=3 (and the neck\'s '
                "in_chans, the head's in_channels, three-value "
                'data_preprocessor mean/std)')
    return (f'set patch_cfg.in_channels={channels} or make the pipeline and '
            f'data_preprocessor produce {in_channels}-channel images')


def check_images(x: Tensor, in_channels: int,
                 img_size: Optional[Tuple[int, int]] = None,
                 patch_size: Optional[int] = None,
                 check_finite: bool = True,
                 name: str = 'SBAMViT') -> None:
    """Raise ``ValueError`` naming what is wrong with a batch of images.

    Args:
        x (Tensor): The batch, expected (B, C, H, W).
        in_channels (int): Channels the patch embedding takes
            (``patch_cfg.in_channels``).
        img_size (tuple, optional): (H, W) the masked forward needs exactly
            (its position embedding and the MAE head's patchify are fixed).
            None skips the size check.
        patch_size (int, optional): For the message.
        check_finite (bool): Also refuse NaN/Inf pixels.
        name (str): Who checks, for the message.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f'{name} expects images of shape (B, C, H, W), got '
                         f'{shape}')
    _, C, H, W = x.shape
    if C != in_channels:
        fix = _channels_fix(C, in_channels)
        raise ValueError(
            f'{name} got {C}-channel images but patch_cfg.in_channels='
            f'{in_channels}: {fix}. Note that data_preprocessor to_rgb only '
            'reorders BGR->RGB; it does not add or remove channels.')
    if img_size is not None and (H, W) != tuple(img_size):
        ph = f', patch_size={patch_size}' if patch_size is not None else ''
        extra = ''
        if patch_size is not None and (H < patch_size or W < patch_size):
            extra = ' (smaller than one patch)'
        elif patch_size is not None and (H % patch_size or W % patch_size):
            extra = ' (not a multiple of the patch size)'
        raise ValueError(
            f'{name} masked forward got {H}x{W} images{extra} but the model '
            f'is built for img_size={tuple(img_size)}{ph}: the position '
            'embedding and the MAE head need exactly img_size. Resize or '
            f'crop to {img_size[0]}x{img_size[1]} in the train pipeline '
            '(e.g. RandomResizedCrop(scale=...)), or set model.backbone.'
            f'img_size={H} (a multiple of patch_size) and the neck\'s '
            'num_patches to match.')
    if check_finite and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f'{name} got {bad} NaN/Inf pixel values in a batch of shape '
            f'{tuple(x.shape)}: the loss would be NaN. Check the images '
            '(float images with NaN/Inf) and the data_preprocessor (a std '
            'of 0 divides by zero). SBAMViT(check_finite=False) turns this '
            'check off.')


def check_binary_mask(mask: Tensor, name: str) -> None:
    """Refuse a pipeline mask holding values other than 0 and 1.

    SBAM keeps each image's count of masked cells and writes a 0/1 mask
    back; a mask with other values (0/255, soft weights, NaN) has no such
    count, and summing or thresholding it would silently change what the
    method masks.

    Args:
        mask (Tensor): The data pipeline's mask, any shape and dtype.
        name (str): Who checks, for the message.
    """
    if mask.dtype == torch.bool:
        return
    binary = (mask == 0) | (mask == 1)
    if bool(binary.all()):  # the one device sync
        return
    seen = mask.detach()[~binary].unique()  # sorted; NaN last
    shown = ', '.join(f'{v:g}' for v in seen[:8].tolist())
    more = f' and {len(seen) - 8} more' if len(seen) > 8 else ''
    raise ValueError(
        f'{name}: the pipeline mask must hold only 0/1 (1 = masked), it '
        f'also holds {shown}{more}. SBAM keeps each image\'s count of masked '
        'cells; make the mask generator write 0/1 (e.g. BEiTMaskGenerator, '
        'SimMIMMaskGenerator) or binarise the mask in the pipeline.')
