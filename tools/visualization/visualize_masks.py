# Copyright (c) mmsbam contributors. All rights reserved.
"""Draw random, SBM and SBAM (AMR) masks of an SBAMViT side by side.

One PNG, one row per image, columns: the image, its token salience ŝ (the
one the model's ``SBAMViT`` feeds its mask generator), MAE's uniform random
mask, SBM at the fixed ``mask_ratio``, SBAM with per-image AMR ratios
(``mode='sample'``; the backbone's ``amr`` settings, otherwise the defaults
``ratio_var=0.1, delta=0.2``) and, when the checkpoint holds the MAE
decoder, the SBAM reconstruction (visible patches pasted back, as in MAE's
own pictures). All masks come from ``torch.Generator`` seeded with
``--seed`` (the same noise for SBM and SBAM), so the picture is
reproducible.

The model comes from ``--config`` (default: MMPretrain's
``mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py``); a ``MAEViT``
backbone is switched to ``SBAMViT``. Without ``--checkpoint`` the model's
initial weights (``init_weights()`` after ``torch.manual_seed(--seed)``) are
used, and the picture's title says so. Images are resized (short side) and
centre-cropped to the backbone's ``img_size`` and normalised with the
config's data preprocessor mean/std. Default images: the colour photographs
``astronaut``, ``coffee`` and ``chelsea`` of ``skimage.data``; for a config
whose dataset is ``FashionMNIST``, ``--num-images`` test images of different
classes read from the dataset's idx files.

The title is also stored in the PNG's ``Title`` text chunk and printed.

Example:
    .venv/bin/python tools/visualization/visualize_masks.py  # docs/masks.png
    .venv/bin/python tools/visualization/visualize_masks.py \\
        --temperature 768 --out docs/masks_t768.png
    .venv/bin/python tools/visualization/visualize_masks.py \\
        --config configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py \\
        --checkpoint work_dirs/demo_sbam_fmnist/epoch_5.pth \\
        --out docs/masks_fmnist.png
"""
import argparse
import copy
import os
import os.path as osp
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from mmsbam.analysis.images import (fashion_mnist_per_class, normalize,
                                    read_image, resize_center_crop,
                                    to_channels)
from mmsbam.analysis.maskings import seeded_maskings
from mmsbam.analysis.models import (build_model, load_config, load_weights,
                                    preprocessor_mean_std)
from mmsbam.analysis.reconstruction import mae_reconstruction
from mmsbam.masking import (DEFAULT_DELTA, DEFAULT_RATIO_VAR,
                            adaptive_mask_ratio)
from mmsbam.visualization import denormalize, draw_masking_figure

DEFAULT_CONFIG = ('mmpretrain::mae/'
                  'mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
DEFAULT_PHOTOS = ('astronaut', 'coffee', 'chelsea')
#: Column titles of the three maskings.
COLUMNS = OrderedDict(random='random (MAE)', sbm='SBM', sbam='SBAM (AMR)')
#: Below this median ŝ the title warns that the salience is nearly flat.
FLAT_MEDIAN = 0.05
#: A PNG larger than this is re-saved with a 256-colour palette.
MAX_PNG_BYTES = 1_000_000


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Draw random, SBM and SBAM (AMR) masks of an SBAMViT '
        'side by side with the token salience.')
    add = parser.add_argument
    add('--config', default=DEFAULT_CONFIG,
        help='MMPretrain MAE config (a file, or "mmpretrain::..."); a '
        f'MAEViT backbone becomes SBAMViT. Default: {DEFAULT_CONFIG}')
    add('--checkpoint',
        help='MMEngine checkpoint (whole MAE model or bare backbone). '
        'Without it the initial weights are drawn.')
    add('--images', nargs='+',
        help='Image files, or names of skimage.data images (e.g. '
        'astronaut coffee chelsea). Default: those three photographs, or '
        'Fashion-MNIST test images for a FashionMNIST config.')
    add('--num-images', type=int, default=6,
        help='Number of Fashion-MNIST test images by default.')
    add('--seed', type=int, default=0,
        help='Seed of the initial weights and of the masking noise.')
    add('--temperature', type=float,
        help="Salience temperature (default: the config's, else 1.0).")
    add('--salience-source', choices=('embedding', 'attention'),
        help="Salience source (default: the config's, else embedding).")
    add('--noise-scale', type=float,
        help="Width of SBM's uniform noise (default: the config's, else "
        '0.5).')
    add('--mask-ratio', type=float,
        help="Base masking ratio (default: the config's, else 0.75).")
    add('--ratio-var', type=float,
        help="AMR half-range (default: the backbone's amr, else 0.1).")
    add('--delta', type=float,
        help="AMR salience threshold (default: the backbone's amr, else "
        '0.2).')
    add('--no-reconstruction', action='store_true',
        help='Do not draw the reconstruction column.')
    add('--out', default='docs/masks.png', help='Output PNG file.')
    return parser.parse_args(argv)


# ---------------------------------------------------------------- config ----
def prepare_model_cfg(cfg, args: argparse.Namespace) -> dict:
    """The config's model with an ``SBAMViT`` backbone and CLI overrides
    (into the backbone's ``masker`` dict if the config gives one)."""
    model_cfg = copy.deepcopy(cfg.model)
    backbone = model_cfg.get('backbone', model_cfg)
    if backbone.get('type') in ('MAEViT', 'mmpretrain.MAEViT'):
        backbone['type'] = 'SBAMViT'
    if 'SBAMViT' not in str(backbone.get('type')):
        raise ValueError('the config\'s backbone must be SBAMViT or MAEViT, '
                         f'got {backbone.get("type")!r}')
    masker = backbone.get('masker') or backbone
    if args.mask_ratio is not None:
        backbone['mask_ratio'] = args.mask_ratio
        if masker is not backbone and 'mask_ratio' in masker:
            masker['mask_ratio'] = args.mask_ratio
    for key in ('temperature', 'salience_source', 'noise_scale'):
        if getattr(args, key) is not None:
            masker[key] = getattr(args, key)
    gen = masker.get('mask_generator')
    if args.noise_scale is not None and gen and 'noise_scale' in gen:
        gen['noise_scale'] = args.noise_scale
    return model_cfg


# ------------------------------------------------------------------ data ----
def load_images(cfg, args: argparse.Namespace, size: int,
                channels: int) -> Tuple[np.ndarray, List[str]]:
    """(N, size, size, channels) uint8 images and their names."""
    if args.images:
        raw = [read_image(spec) for spec in args.images]
        names = [osp.splitext(osp.basename(s))[0] for s in args.images]
    else:
        dataset = cfg.get('train_dataloader', {}).get('dataset', {})
        if 'FashionMNIST' in str(dataset.get('type', '')):
            raw, names = fashion_mnist_per_class(
                dataset.get('data_root', 'data/fashion_mnist'),
                args.num_images)
        else:
            raw = [read_image(name) for name in DEFAULT_PHOTOS]
            names = list(DEFAULT_PHOTOS)
    imgs = [to_channels(resize_center_crop(img, size), channels)
            for img in raw]
    return np.stack(imgs), names


# --------------------------------------------------------------- masking ----
def amr_settings(backbone: nn.Module, args: argparse.Namespace) -> dict:
    """``ratio_var`` and ``delta`` of AMR: CLI, else backbone, else default."""
    amr = backbone.masker.amr
    ratio_var = getattr(amr, 'ratio_var', DEFAULT_RATIO_VAR)
    delta = getattr(amr, 'delta', DEFAULT_DELTA)
    if args.ratio_var is not None:
        ratio_var = args.ratio_var
    if args.delta is not None:
        delta = args.delta
    return dict(ratio_var=float(ratio_var), delta=float(delta))


@torch.no_grad()
def compute_masks(backbone: nn.Module, x: Tensor, noise_scale: float,
                  amr: dict, seed: int):
    """Salience and the three maskings of images ``x``.

    Returns:
        tuple: ``(salience, OrderedDict column -> MaskingResult, AMR
        ratios)``.
    """
    salience = backbone.masker.salience(
        backbone.patch_tokens(x), layers=backbone.layers)
    ratio = float(backbone.mask_ratio)
    ratios = adaptive_mask_ratio(salience, ratio, amr['ratio_var'],
                                 amr['delta'])
    maskings = seeded_maskings(salience, ratio, ratios, noise_scale, seed)
    return salience, OrderedDict(
        (COLUMNS[k], v) for k, v in maskings.items()), ratios


# ---------------------------------------------------------------- output ----
def describe_arch(backbone: nn.Module) -> str:
    """E.g. ``SBAMViT 768-d x12, 224 px, 16 px patches (196 tokens)``."""
    dims = getattr(backbone, 'embed_dims', '?')
    layers = len(getattr(backbone, 'layers', []))
    L = backbone.patch_resolution[0] * backbone.patch_resolution[1]
    patch = backbone.patch_embed.projection.kernel_size[0]
    img = backbone.patch_resolution[0] * patch
    return (f'SBAMViT {dims}-d x{layers}, {img} px, {patch} px patches '
            f'({L} tokens)')


def make_title(backbone: nn.Module, weights: str, noise_scale: float,
               amr: dict, seed: int, salience: Tensor) -> str:
    """The picture's title: model, weights, masking settings and, when the
    salience is nearly flat, a note."""
    masker = backbone.masker
    title = (f'{describe_arch(backbone)}: {weights}\n'
             f'{masker.salience_source} salience, temperature '
             f'{masker.temperature:g}; mask ratio {backbone.mask_ratio:g}; '
             f'SBM noise_scale {noise_scale:g}; AMR (per image) ratio_var '
             f'{amr["ratio_var"]:g}, delta {amr["delta"]:g}; seed '
             f'{seed} (same noise in all three mask columns)')
    median = float(salience.median())
    if median < FLAT_MEDIAN:
        title += (f'\nnote: the salience is nearly flat (median ŝ '
                  f'{median:.3f}), so SBM is close to random masking here; '
                  'see README, "Salience scale"')
    return title


def save_png(picture: np.ndarray, path: str, title: str) -> int:
    """Write ``picture`` with ``title`` in its text chunk; return bytes.

    A file over 1 MB is re-saved with an adaptive 256-colour palette.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text('Title', title)
    info.add_text('Software', 'mmsbam tools/visualization/visualize_masks.py')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    img = Image.fromarray(picture)
    img.save(path, pnginfo=info, optimize=True)
    if osp.getsize(path) > MAX_PNG_BYTES:
        img.quantize(256, method=Image.Quantize.MEDIANCUT).save(
            path, pnginfo=info, optimize=True)
    return osp.getsize(path)


def print_summary(names: List[str], salience: Tensor, maskings: dict,
                  ratios: Tensor) -> None:
    """One line per image: median salience, masked counts, AMR ratio."""
    for i, name in enumerate(names):
        s = salience[i]
        print(f'{name}: salience median {float(s.median()):.3f}; masked '
              + ', '.join(f'{k} {int(v.mask[i].sum())}'
                          for k, v in maskings.items())
              + f' of {s.numel()}; AMR ratio {float(ratios[i]):.3f}')


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Build the model, mask the images three ways, draw and save."""
    args = parse_args(argv)
    cfg = load_config(args.config)
    model = build_model(prepare_model_cfg(cfg, args), args.seed)
    backbone = getattr(model, 'backbone', model)
    has_decoder = False
    if args.checkpoint:
        has_decoder = load_weights(model, args.checkpoint)['has_decoder']
        weights = f'checkpoint {args.checkpoint}'
    else:
        weights = (f'initial weights, no checkpoint (init_weights(), seed '
                   f'{args.seed})')
    mean, std = preprocessor_mean_std(cfg)
    size = backbone.patch_resolution[0] * backbone.patch_size
    imgs, names = load_images(cfg, args, size, backbone.in_channels)
    x = normalize(imgs, mean, std)

    noise_scale = getattr(backbone.masker.mask_generator, 'noise_scale', None)
    if noise_scale is None:
        noise_scale = 0.5 if args.noise_scale is None else args.noise_scale
    amr = amr_settings(backbone, args)
    salience, maskings, ratios = compute_masks(backbone, x, noise_scale, amr,
                                               args.seed)
    recon = None
    if has_decoder and not args.no_reconstruction:
        recon = mae_reconstruction(model, x, maskings[COLUMNS['sbam']])
    title = make_title(backbone, weights, noise_scale, amr, args.seed,
                       salience)
    picture = draw_masking_figure(
        denormalize(x, mean, std),
        salience, OrderedDict((k, v.mask) for k, v in maskings.items()),
        reconstructions=None if recon is None else denormalize(
            recon, mean, std),
        ratios={COLUMNS['sbam']: ratios},
        title=title,
        row_labels=names,
        reconstruction_title='SBAM reconstruction\n(visible patches pasted)'
        if recon is not None else 'reconstruction')
    nbytes = save_png(picture, args.out, title)
    print(title)
    print_summary(names, salience, maskings, ratios)
    print(f'wrote {args.out} ({picture.shape[1]}x{picture.shape[0]} px, '
          f'{nbytes / 1e3:.0f} kB)')


if __name__ == '__main__':
    main()
