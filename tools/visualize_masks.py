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
    .venv/bin/python tools/visualize_masks.py                  # docs/masks.png
    .venv/bin/python tools/visualize_masks.py --temperature 768 \\
        --out docs/masks_t768.png
    .venv/bin/python tools/visualize_masks.py \\
        --config configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py \\
        --checkpoint work_dirs/demo_sbam_fmnist/epoch_5.pth \\
        --out docs/masks_fmnist.png
"""
import argparse
import copy
import gzip
import logging
import os
import os.path as osp
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

DEFAULT_CONFIG = ('mmpretrain::mae/'
                  'mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
DEFAULT_PHOTOS = ('astronaut', 'coffee', 'chelsea')
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
FMNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
#: Where else to look for the raw Fashion-MNIST files (Debian's package).
FMNIST_FALLBACK_ROOT = '/usr/share/datasets/fashion-mnist'
#: Below this median ŝ the title warns that the salience is nearly flat.
FLAT_MEDIAN = 0.05
#: A PNG larger than this is re-saved with a 256-colour palette.
MAX_PNG_BYTES = 1_000_000


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Draw random, SBM and SBAM (AMR) masks of an SBAMViT '
        'side by side with the token salience.')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='MMPretrain MAE config (a file, or "mmpretrain::..."); a '
        f'MAEViT backbone becomes SBAMViT. Default: {DEFAULT_CONFIG}')
    parser.add_argument(
        '--checkpoint',
        help='MMEngine checkpoint (whole MAE model or bare backbone). '
        'Without it the initial weights are drawn.')
    parser.add_argument(
        '--images',
        nargs='+',
        help='Image files, or names of skimage.data images (e.g. '
        'astronaut coffee chelsea). Default: those three photographs, or '
        'Fashion-MNIST test images for a FashionMNIST config.')
    parser.add_argument(
        '--num-images',
        type=int,
        default=6,
        help='Number of Fashion-MNIST test images by default.')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='Seed of the initial weights and of the masking noise.')
    parser.add_argument(
        '--temperature',
        type=float,
        help="Salience temperature (default: the config's, else 1.0).")
    parser.add_argument(
        '--salience-source',
        choices=('embedding', 'attention'),
        help="Salience source (default: the config's, else embedding).")
    parser.add_argument(
        '--noise-scale',
        type=float,
        help="Width of SBM's uniform noise (default: the config's, else "
        '0.5).')
    parser.add_argument(
        '--mask-ratio',
        type=float,
        help="Base masking ratio (default: the config's, else 0.75).")
    parser.add_argument(
        '--ratio-var',
        type=float,
        help="AMR half-range (default: the backbone's amr, else 0.1).")
    parser.add_argument(
        '--delta',
        type=float,
        help="AMR salience threshold (default: the backbone's amr, else "
        '0.2).')
    parser.add_argument(
        '--no-reconstruction',
        action='store_true',
        help='Do not draw the reconstruction column.')
    parser.add_argument(
        '--out', default='docs/masks.png', help='Output PNG file.')
    return parser.parse_args(argv)


# ---------------------------------------------------------------- config ----
def load_config(path: str):
    """``Config`` of a file or of an ``mmpretrain::`` path."""
    from mmengine.config import Config
    if '::' in path:
        from mmengine.hub import get_config
        return get_config(path)
    return Config.fromfile(path)


def prepare_model_cfg(cfg, args: argparse.Namespace) -> dict:
    """The config's model with an ``SBAMViT`` backbone and CLI overrides."""
    model_cfg = copy.deepcopy(cfg.model)
    backbone = model_cfg.get('backbone', model_cfg)
    if backbone.get('type') in ('MAEViT', 'mmpretrain.MAEViT'):
        backbone['type'] = 'SBAMViT'
    if 'SBAMViT' not in str(backbone.get('type')):
        raise ValueError('the config\'s backbone must be SBAMViT or MAEViT, '
                         f'got {backbone.get("type")!r}')
    for arg, key in (('temperature', 'temperature'),
                     ('salience_source', 'salience_source'),
                     ('noise_scale', 'noise_scale'),
                     ('mask_ratio', 'mask_ratio')):
        value = getattr(args, arg)
        if value is not None:
            backbone[key] = value
    if args.noise_scale is not None and backbone.get('mask_generator'):
        gen = backbone['mask_generator']
        if 'noise_scale' in gen:
            gen['noise_scale'] = args.noise_scale
    return model_cfg


def build_model(model_cfg: dict, seed: int) -> nn.Module:
    """Build the model and draw its initial weights under ``seed``."""
    import mmsbam  # noqa: F401  (registers SBAMViT, loads MMEngine ckpts)
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules()
    # init_weights() logs one line per parameter
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.eval()
    return model


def load_weights(model: nn.Module, path: str) -> bool:
    """Load a checkpoint of the whole model or of its bare backbone.

    Returns:
        bool: Whether the checkpoint held the MAE decoder (``neck.*``), so
        that a reconstruction is meaningful.
    """
    from mmengine.logging import MMLogger
    from mmengine.runner import load_checkpoint
    logger = MMLogger.get_current_instance()
    ckpt = load_checkpoint(
        model,
        path,
        map_location='cpu',
        strict=False,
        logger=logger,
        revise_keys=[(r'^module\.', '')])
    state = ckpt.get('state_dict', ckpt)
    keys = [k[len('module.'):] if k.startswith('module.') else k
            for k in state]
    if not any(k.startswith('backbone.') for k in keys):
        backbone = getattr(model, 'backbone', model)
        load_checkpoint(backbone, path, map_location='cpu', strict=False,
                        logger=logger, revise_keys=[(r'^module\.', '')])
    return any(k.startswith('neck.') for k in keys)


def normalisation(cfg) -> Tuple[List[float], List[float]]:
    """Mean and std of the config's data preprocessor (0..255 scale)."""
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor')
    if pre and pre.get('mean') is not None and pre.get('std') is not None:
        return list(pre['mean']), list(pre['std'])
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


# ------------------------------------------------------------------ data ----
def _resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of the short side to ``size``, then centre crop."""
    from PIL import Image
    pil = Image.fromarray(img)
    w, h = pil.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        new = (max(size, round(w * scale)), max(size, round(h * scale)))
        pil = pil.resize(new, Image.BICUBIC)
        w, h = pil.size
        left, top = (w - size) // 2, (h - size) // 2
        pil = pil.crop((left, top, left + size, top + size))
    return np.asarray(pil)


def _to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (H, W, channels) uint8."""
    if img.ndim == 2:
        img = img[..., None]
    img = img[..., :3]
    if channels == 1 and img.shape[-1] == 3:
        grey = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        img = grey.round().clip(0, 255).astype(np.uint8)[..., None]
    elif channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    return img


def read_image(spec: str) -> np.ndarray:
    """An image file, or the name of an ``skimage.data`` image, as uint8."""
    if osp.isfile(spec):
        from PIL import Image
        with Image.open(spec) as im:
            im = im.convert('L' if im.mode in ('L', 'I', 'I;16', '1') else
                            'RGB')
            return np.asarray(im)
    from skimage import data as skdata
    loader = getattr(skdata, spec, None)
    if loader is None:
        raise FileNotFoundError(f'{spec!r} is neither a file nor an image '
                                'of skimage.data')
    img = loader()
    if isinstance(img, tuple):  # e.g. stereo_motorcycle
        img = img[0]
    if img.dtype != np.uint8:
        img = np.asarray(img, dtype=np.float64)
        img = (img * 255 if img.max() <= 1 else img).clip(0, 255)
        img = img.round().astype(np.uint8)
    return img


def _read_idx(root: str, name: str) -> np.ndarray:
    """Read a raw (or gzipped) idx file of Fashion-MNIST."""
    for path in (osp.join(root, name), osp.join(root, name + '.gz')):
        if osp.isfile(path):
            opener = gzip.open if path.endswith('.gz') else open
            with opener(path, 'rb') as f:
                raw = f.read()
            ndim = raw[3]
            dims = np.frombuffer(raw[4:4 + 4 * ndim], dtype='>i4')
            return np.frombuffer(
                raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise FileNotFoundError(f'{name} not found in {root}')


def fashion_mnist_images(data_root: str,
                         num: int) -> Tuple[List[np.ndarray], List[str]]:
    """The first test image of each of ``num`` different classes."""
    roots = [data_root, FMNIST_FALLBACK_ROOT]
    for root in roots:
        try:
            images = _read_idx(root, 't10k-images-idx3-ubyte')
            labels = _read_idx(root, 't10k-labels-idx1-ubyte')
            break
        except FileNotFoundError:
            continue
    else:
        raise FileNotFoundError(
            f'Fashion-MNIST test files not found in {roots}; run '
            'tools/prepare_fashion_mnist.py or pass --images')
    picked, names, seen = [], [], set()
    for index, label in enumerate(labels):
        if int(label) in seen:
            continue
        seen.add(int(label))
        picked.append(images[index])
        names.append(f'#{index} {FMNIST_CLASSES[int(label)]}')
        if len(picked) == num:
            break
    return picked, names


def load_images(cfg, args: argparse.Namespace, size: int,
                channels: int) -> Tuple[np.ndarray, List[str]]:
    """(N, size, size, channels) uint8 images and their names."""
    if args.images:
        raw = [read_image(spec) for spec in args.images]
        names = [osp.splitext(osp.basename(s))[0] for s in args.images]
    else:
        dataset = cfg.get('train_dataloader', {}).get('dataset', {})
        if 'FashionMNIST' in str(dataset.get('type', '')):
            raw, names = fashion_mnist_images(
                dataset.get('data_root', 'data/fashion_mnist'),
                args.num_images)
        else:
            raw = [read_image(name) for name in DEFAULT_PHOTOS]
            names = list(DEFAULT_PHOTOS)
    imgs = []
    for img in raw:
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        elif img.ndim == 3:
            img = img[..., :3]
        imgs.append(_resize_center_crop(np.ascontiguousarray(img), size))
    imgs = [_to_channels(img, channels) for img in imgs]
    return np.stack(imgs), names


def normalise(imgs: np.ndarray, mean: Sequence[float],
              std: Sequence[float]) -> Tensor:
    """(N, H, W, C) uint8 -> (N, C, H, W) float32, ``(x - mean) / std``."""
    x = torch.from_numpy(imgs).float().permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


# --------------------------------------------------------------- masking ----
def amr_settings(backbone: nn.Module, args: argparse.Namespace) -> dict:
    """``ratio_var`` and ``delta`` of AMR: CLI, else backbone, else default."""
    from mmsbam.amr import DEFAULT_DELTA, DEFAULT_RATIO_VAR
    amr = getattr(backbone, 'amr', None)
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
        tuple: ``(salience, OrderedDict name -> MaskingResult, AMR ratios)``.
    """
    from mmsbam import (adaptive_mask_ratio, random_masking,
                        salience_guided_masking)
    tokens = backbone.patch_embed(x)[0] + backbone.pos_embed[:, 1:, :]
    salience = backbone.salience(tokens)
    ratio = float(backbone.mask_ratio)
    ratios = adaptive_mask_ratio(salience, ratio, amr['ratio_var'],
                                 amr['delta'])

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    maskings = OrderedDict()
    maskings['random (MAE)'] = random_masking(salience, ratio, gen())
    maskings['SBM'] = salience_guided_masking(salience, ratio, noise_scale,
                                              gen())
    maskings['SBAM (AMR)'] = salience_guided_masking(salience, ratios,
                                                     noise_scale, gen())
    return salience, maskings, ratios


@torch.no_grad()
def reconstruct(model: nn.Module, x: Tensor, masking, salience: Tensor,
                ratios: Tensor) -> Tensor:
    """MAE reconstruction of ``x`` under ``masking``, normalised space.

    The backbone's forward runs with ``masking`` (its mask generator is
    bypassed for this call). With ``norm_pix`` the head predicts
    per-patch-normalised pixels; they are mapped back with the target
    patch's mean and variance, as MAE's visualisation does. Visible patches
    are pasted from the input.
    """
    backbone, neck, head = model.backbone, model.neck, model.head
    backbone.generate_mask = lambda *args, **kwargs: (masking, salience,
                                                      ratios)
    try:
        latent, mask, ids_restore = backbone(x)
    finally:
        del backbone.generate_mask
    pred = neck(latent, ids_restore)
    if getattr(head, 'norm_pix', False):
        target = head.patchify(x)
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    # paste visible patches: (B, L) mask -> (B, L, p*p*C) -> image
    patches = head.patchify(x)
    m = mask.unsqueeze(-1).to(pred.dtype)
    return head.unpatchify(patches * (1 - m) + pred * m)


def describe_arch(backbone: nn.Module) -> str:
    """E.g. ``ViT 768-d x12, 224 px, 16 px patches (196 tokens)``."""
    dims = getattr(backbone, 'embed_dims', '?')
    layers = len(getattr(backbone, 'layers', []))
    L = backbone.patch_resolution[0] * backbone.patch_resolution[1]
    img = backbone.patch_resolution[0] * backbone.patch_embed.projection \
        .kernel_size[0]
    patch = backbone.patch_embed.projection.kernel_size[0]
    return (f'SBAMViT {dims}-d x{layers}, {img} px, {patch} px patches '
            f'({L} tokens)')


def save_png(picture: np.ndarray, path: str, title: str) -> int:
    """Write ``picture`` with ``title`` in its text chunk; return bytes.

    A file over 1 MB is re-saved with an adaptive 256-colour palette.
    """
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text('Title', title)
    info.add_text('Software', 'mmsbam tools/visualize_masks.py')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    img = Image.fromarray(picture)
    img.save(path, pnginfo=info, optimize=True)
    if osp.getsize(path) > MAX_PNG_BYTES:
        img.quantize(256, method=Image.Quantize.MEDIANCUT).save(
            path, pnginfo=info, optimize=True)
    return osp.getsize(path)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Build the model, mask the images three ways, draw and save."""
    args = parse_args(argv)
    from mmsbam.visualization import denormalize, draw_masking_figure

    cfg = load_config(args.config)
    model_cfg = prepare_model_cfg(cfg, args)
    model = build_model(model_cfg, args.seed)
    backbone = getattr(model, 'backbone', model)
    has_decoder = False
    if args.checkpoint:
        has_decoder = load_weights(model, args.checkpoint)
        weights = f'checkpoint {args.checkpoint}'
    else:
        weights = (f'initial weights, no checkpoint (init_weights(), seed '
                   f'{args.seed})')
    size = backbone.patch_resolution[0] * \
        backbone.patch_embed.projection.kernel_size[0]
    channels = backbone.patch_embed.projection.in_channels
    mean, std = normalisation(cfg)
    imgs, names = load_images(cfg, args, size, channels)
    x = normalise(imgs, mean, std)

    gen = backbone.mask_generator
    noise_scale = getattr(gen, 'noise_scale', None)
    if noise_scale is None:
        noise_scale = 0.5 if args.noise_scale is None else args.noise_scale
    amr = amr_settings(backbone, args)
    salience, maskings, ratios = compute_masks(backbone, x, noise_scale, amr,
                                               args.seed)

    recon, recon_title = None, 'reconstruction'
    can_reconstruct = (
        has_decoder and not args.no_reconstruction
        and hasattr(model, 'neck') and hasattr(model, 'head')
        and hasattr(model.head, 'unpatchify'))
    if can_reconstruct:
        rec = reconstruct(model, x, maskings['SBAM (AMR)'], salience, ratios)
        recon = denormalize(rec, mean, std)
        recon_title = 'SBAM reconstruction\n(visible patches pasted)'

    title = (f'{describe_arch(backbone)}: {weights}\n'
             f'{backbone.salience_source} salience, temperature '
             f'{backbone.temperature:g}; mask ratio {backbone.mask_ratio:g}; '
             f'SBM noise_scale {noise_scale:g}; AMR (per image) ratio_var '
             f'{amr["ratio_var"]:g}, delta {amr["delta"]:g}; seed '
             f'{args.seed} (same noise in all three mask columns)')
    median = float(salience.median())
    if median < FLAT_MEDIAN:
        title += (f'\nnote: the salience is nearly flat (median ŝ '
                  f'{median:.3f}), so SBM is close to random masking here; '
                  'see README, "Salience scale"')
    picture = draw_masking_figure(
        denormalize(x, mean, std),
        salience, OrderedDict((k, v.mask) for k, v in maskings.items()),
        reconstructions=recon,
        ratios={'SBAM (AMR)': ratios},
        title=title,
        row_labels=names,
        reconstruction_title=recon_title)
    nbytes = save_png(picture, args.out, title)
    print(title)
    for i, name in enumerate(names):
        s = salience[i]
        print(f'{name}: salience median {float(s.median()):.3f}; masked '
              + ', '.join(f'{k} {int(v.mask[i].sum())}'
                          for k, v in maskings.items())
              + f' of {s.numel()}; AMR ratio {float(ratios[i]):.3f}')
    print(f'wrote {args.out} ({picture.shape[1]}x{picture.shape[0]} px, '
          f'{nbytes / 1e3:.0f} kB)')


if __name__ == '__main__':
    main()
