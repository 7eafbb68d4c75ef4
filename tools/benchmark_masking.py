# Copyright (c) mmsbam contributors. All rights reserved.
"""Benchmark the training cost of SBAM masking against stock MAE.

What it measures
----------------
Four MAE models are built in one process from MMPretrain's own config
(``mmpretrain::mae/mae_vit-{base,large}-p16_8xb512-amp-coslr-300e_in1k.py``):

* ``MAE``        -- the stock config (``MAEViT``, uniform random masking);
* ``SBM``        -- the same config with ``backbone.type='SBAMViT'``
  (salience-based masking, fixed ratio);
* ``AMR-sample`` -- ``SBAMViT`` with ``amr=dict(mode='sample')``: one ratio
  per image, so the encoder takes a padded batch with a key-padding mask;
* ``AMR-batch``  -- ``SBAMViT`` with ``amr=dict(mode='batch')``: one ratio
  per batch, no padding.

SBAM adds no parameters, so the four state dicts are key-identical; the
stock model's initial weights are loaded into the other three and all four
compute the same network. Each has its own AdamW optimiser.

A *train step* is ``model.loss(inputs, None)`` (forward through backbone,
decoder neck and pixel head), ``backward``, ``optimizer.step()`` and
``zero_grad``, optionally under ``torch.autocast`` (``--amp``: float16 with a
``GradScaler`` on CUDA, bfloat16 on CPU). After ``--warmup`` rounds, the
variants are run round-robin for ``--iters`` rounds -- every round all four
step on the same batch and the starting variant rotates, so drift (thermal,
clock, other load) hits every variant alike. Each step is wall-clock timed,
with ``torch.cuda.synchronize()`` before and after on CUDA.

Reported:

* median and inter-quartile range of the step time per variant; the ratio
  of each variant's median to stock MAE's median, and the median of the
  per-round paired ratios (more robust to drift). The issue's target is SBM
  within 3% of stock MAE.
* peak memory of a step: on CUDA ``torch.cuda.max_memory_allocated`` (reset
  before every step), both absolute and above what was resident before the
  step (the four models and optimisers share the device, so the latter is
  the comparable number); on Linux CPU the peak-RSS rise of the process
  over a step (``VmHWM`` after resetting it through ``/proc/self/clear_refs``;
  approximate, since the C allocator may keep freed memory resident),
  otherwise n/a.
* the cost of salience alone, timed separately each round on the round's
  batch outside the train steps: ``SBAMViT.salience`` (embedding source),
  the ``attention`` source (block 0), the whole ``generate_mask`` of SBM and
  AMR-sample, and stock ``MAEViT.random_masking`` for reference, each as a
  fraction of the stock median step.
* for AMR: the masking ratio range per image, and for ``mode='sample'`` the
  padding waste ``1 - sum(num_visible) / (B * K_max)`` (fraction of encoder
  token slots that hold padding), from the ``MaskingResult`` that
  ``generate_mask`` returned inside the timed steps, plus the encoder length
  ``K_max`` against stock MAE's fixed ``len_keep``.

Inputs are natural photos from ``skimage.data`` (astronaut, coffee, chelsea,
rocket, ...), random-resized-cropped (scale 0.2-1.0, as MAE's pipeline) and
flipped to ``--img-size``, normalised with ImageNet mean/std; salience and
padding statistics are only meaningful on such images. ``--synthetic``
replaces them with uniform noise.

Example::

    python tools/benchmark_masking.py              # CPU or GPU defaults
    python tools/benchmark_masking.py --device cuda --amp --iters 50 \\
        --json work_dirs/bench_masking.json
"""
import argparse
import json
import logging
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

VARIANTS: Tuple[str, ...] = ('MAE', 'SBM', 'AMR-sample', 'AMR-batch')
CONFIGS: Dict[str, str] = {
    'b': 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'l': 'mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-300e_in1k.py',
}
PHOTOS: Tuple[str, ...] = ('astronaut', 'coffee', 'chelsea', 'rocket',
                           'immunohistochemistry', 'hubble_deep_field',
                           'retina', 'stereo_motorcycle')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TARGET = 0.03  # the budget for SBM over stock MAE


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time MAE train steps with stock, SBM and AMR masking.')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='images per step (default: 64 on cuda, 8 on cpu)')
    parser.add_argument(
        '--iters',
        type=int,
        default=None,
        help='timed steps per variant (default: 40 on cuda, 6 on cpu)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=None,
        help='untimed steps per variant first (default: 5 on cuda, 1 on cpu)')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='autocast: float16 + GradScaler on cuda, bfloat16 on cpu')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument(
        '--arch',
        choices=sorted(CONFIGS),
        default='b',
        help='ViT-B/16 or ViT-L/16 MAE config')
    parser.add_argument(
        '--lr',
        type=float,
        default=1e-6,
        help='AdamW learning rate (small: weights stay close)')
    parser.add_argument(
        '--synthetic',
        action='store_true',
        help='uniform-noise images instead of skimage photos')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--json',
        metavar='OUT',
        default=None,
        help='also write the results as JSON to OUT')
    args = parser.parse_args()
    on_cuda = torch.device(args.device).type == 'cuda'
    if args.batch_size is None:
        args.batch_size = 64 if on_cuda else 8
    if args.iters is None:
        args.iters = 40 if on_cuda else 6
    if args.warmup is None:
        args.warmup = 5 if on_cuda else 1
    if args.batch_size < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--batch-size and --iters must be >= 1, --warmup >= 0')
    if args.img_size % 16:
        parser.error('--img-size must be a multiple of the patch size 16')
    return args


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def load_photos() -> List[Tensor]:
    """Colour photos shipped with scikit-image, (3, H, W) float in [0, 1]."""
    try:
        import skimage.data
    except ImportError:
        return []
    photos = []
    for name in PHOTOS:
        try:
            image = getattr(skimage.data, name)()
        except Exception:  # missing optional download, renamed, ...
            continue
        if isinstance(image, tuple):  # stereo pairs
            image = image[0]
        if image.ndim != 3 or image.shape[2] < 3:
            continue
        photos.append(
            torch.from_numpy(image[..., :3].copy()).permute(2, 0, 1).float() /
            255.)
    return photos


def random_resized_crop(image: Tensor, size: int,
                        gen: torch.Generator) -> Tensor:
    """MAE-style RandomResizedCrop (scale 0.2-1, ratio 3/4-4/3) and flip."""
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
    """Normalised (B, 3, size, size) batch of crops; noise if no photos."""
    if photos:
        idx = torch.randint(0, len(photos), (batch_size, ), generator=gen)
        images = torch.stack(
            [random_resized_crop(photos[i], size, gen) for i in idx.tolist()])
    else:
        images = torch.rand(batch_size, 3, size, size, generator=gen)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


# --------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------
def load_config(path: str) -> 'Config':  # noqa: F821
    """Load an ``mmpretrain::`` config from the installed package."""
    from mmengine.config import Config
    try:
        return Config.fromfile(path)
    except FileNotFoundError:
        # mmengine resolves the ``package::`` prefix in ``hub.get_config``
        from mmengine.hub import get_config
        return get_config(path)


def build_models(arch: str, img_size: int,
                 device: torch.device) -> Dict[str, nn.Module]:
    """Stock MAE and the three SBAM variants, sharing initial weights."""
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules()
    import mmsbam  # noqa: F401  (registers SBAMViT)

    cfg = load_config(CONFIGS[arch])
    stock_cfg = cfg.model.copy()
    stock_cfg.backbone = dict(stock_cfg.backbone, img_size=img_size)
    stock_cfg.neck = dict(stock_cfg.neck, num_patches=(img_size // 16)**2)
    backbones = {
        'MAE':
        stock_cfg.backbone,
        'SBM':
        dict(stock_cfg.backbone, type='SBAMViT'),
        'AMR-sample':
        dict(stock_cfg.backbone, type='SBAMViT', amr=dict(mode='sample')),
        'AMR-batch':
        dict(stock_cfg.backbone, type='SBAMViT', amr=dict(mode='batch')),
    }
    models: Dict[str, nn.Module] = {}
    state = None
    for name in VARIANTS:
        model = MODELS.build(dict(stock_cfg, backbone=backbones[name]))
        if state is None:
            # mmengine logs every parameter's init at INFO; keep the report
            logger = MMLogger.get_current_instance()
            level = logger.level
            logger.setLevel(logging.WARNING)
            try:
                model.init_weights()
            finally:
                logger.setLevel(level)
            state = model.state_dict()
        else:
            model.load_state_dict(state, strict=True)
        models[name] = model.to(device).train()
    return models


# --------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------
def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            match = re.search(rf'^{field}:\s+(\d+)\s+kB', f.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class PeakMemory:
    """Peak memory of one step: CUDA allocator, or Linux process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = 'n/a'
        self.before = 0
        if device.type == 'cuda':
            self.kind = 'cuda max_memory_allocated'
        elif self._reset_rss_peak() and _proc_status_kib('VmHWM'):
            self.kind = 'process peak RSS (VmHWM), approx.'

    @staticmethod
    def _reset_rss_peak() -> bool:
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # resets VmHWM to the current RSS
            return True
        except OSError:
            return False

    def start(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
        elif self.kind != 'n/a':
            self._reset_rss_peak()
            self.before = (_proc_status_kib('VmRSS') or 0) * 1024

    def stop(self) -> Tuple[Optional[int], Optional[int]]:
        """(absolute peak, peak above the start) in bytes, or Nones."""
        if self.device.type == 'cuda':
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.kind != 'n/a':
            peak = (_proc_status_kib('VmHWM') or 0) * 1024
        else:
            return None, None
        return peak, peak - self.before


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


class Trainer:
    """One model, its AdamW optimiser and (fp16 AMP) grad scaler."""

    def __init__(self, model: nn.Module, lr: float, amp: bool,
                 device: torch.device) -> None:
        self.model = model
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
        self.amp_dtype = None
        if amp:
            self.amp_dtype = (
                torch.float16 if device.type == 'cuda' else torch.bfloat16)
        self.scaler = (
            torch.amp.GradScaler('cuda')
            if self.amp_dtype == torch.float16 else None)
        self.device = device

    def autocast(self) -> ContextManager:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, inputs: Tensor) -> None:
        with self.autocast():
            loss = self.model.loss(inputs, None)['loss']
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def record_masks(backbone: nn.Module, store: List[Tuple[Tensor,
                                                        Tensor]]) -> None:
    """Wrap ``backbone.generate_mask`` to keep (num_visible, ratio) of every
    call, without a host sync (tensors are read after the timed loop)."""
    generate_mask = backbone.generate_mask

    def recording(tokens: Tensor):
        masking, salience, ratio = generate_mask(tokens)
        store.append(
            (masking.num_visible.detach(), torch.as_tensor(ratio).detach()))
        return masking, salience, ratio

    backbone.generate_mask = recording


def patch_tokens(backbone: nn.Module, x: Tensor) -> Tensor:
    """What ``random_masking``/``generate_mask`` receive: patch + pos embed."""
    return backbone.patch_embed(x)[0] + backbone.pos_embed[:, 1:, :]


# --------------------------------------------------------------------------
# statistics and report
# --------------------------------------------------------------------------
def quantiles(values: List[float]) -> Tuple[float, float, float]:
    """(q25, median, q75) with linear interpolation."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method='inclusive')
    return q[0], q[1], q[2]


def fmt_bytes(n: Optional[float]) -> str:
    return 'n/a' if n is None else f'{n / 2**20:,.0f} MiB'


def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.M)
        if match:
            name = match.group(1).strip()
    except OSError:
        pass
    return f'{name} ({torch.get_num_threads()} torch threads, ' \
           f'{os.cpu_count()} CPUs)'


def main() -> None:
    args = parse_args()
    # import-time chatter of mmcv-lite / pkg_resources, unrelated to the run
    warnings.filterwarnings('ignore', category=UserWarning, module='mmcv')
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    wall_start = time.perf_counter()

    import mmpretrain
    models = build_models(args.arch, args.img_size, device)
    trainers = {
        n: Trainer(m, args.lr, args.amp, device)
        for n, m in models.items()
    }
    photos = [] if args.synthetic else load_photos()
    gen = torch.Generator().manual_seed(args.seed)
    memory = PeakMemory(device)

    amr_records: Dict[str, List[Tuple[Tensor, Tensor]]] = {
        'AMR-sample': [],
        'AMR-batch': []
    }
    for name, store in amr_records.items():
        record_masks(models[name].backbone, store)

    stock_bb = models['MAE'].backbone
    sbm_bb = models['SBM'].backbone
    amr_bb = models['AMR-sample'].backbone
    from mmsbam.salience import attention_salience
    salience_ops: Dict[str, Callable[[Tensor], Any]] = {
        'salience (embedding, X X^T)':
        sbm_bb.salience,
        'salience (attention, block 0)':
        lambda t: attention_salience(t, sbm_bb.layers, 0, sbm_bb.temperature),
        'SBM generate_mask (salience+mask)':
        sbm_bb.generate_mask,
        # the class method, so the recording wrapper does not see these calls
        'AMR-sample generate_mask':
        type(amr_bb).generate_mask.__get__(amr_bb),
        'stock MAEViT.random_masking':
        lambda t: stock_bb.random_masking(t, stock_bb.mask_ratio),
    }

    times: Dict[str, List[float]] = {n: [] for n in VARIANTS}
    peaks: Dict[str, List[Tuple[Optional[int], Optional[int]]]] = {
        n: []
        for n in VARIANTS
    }
    side: Dict[str, List[float]] = {n: [] for n in salience_ops}
    rounds = args.warmup + args.iters
    print(
        f'{len(photos) or "no"} photos; {rounds} rounds x '
        f'{len(VARIANTS)} variants ({args.warmup} warm-up) ...',
        flush=True)
    for r in range(rounds):
        measured = r >= args.warmup
        if r == args.warmup:
            for store in amr_records.values():
                store.clear()
        inputs = make_batch(photos, args.batch_size, args.img_size, gen)
        inputs = inputs.to(device, non_blocking=False)
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        for name in order:
            memory.start()
            t = timed(lambda: trainers[name].step(inputs), device)
            peak = memory.stop()
            if measured:
                times[name].append(t)
                peaks[name].append(peak)
        # cost of salience alone, on the same batch, outside the train steps
        with torch.no_grad(), trainers['SBM'].autocast():
            tokens = patch_tokens(sbm_bb, inputs)
            for op_name, op in salience_ops.items():
                t = timed(lambda: op(tokens), device)
                if measured:
                    side[op_name].append(t)
        print(
            f'  round {r + 1}/{rounds}' + ('' if measured else ' (warm-up)') +
            ': ' + ', '.join(f'{n} {times[n][-1]:.3f}s' if measured else n
                             for n in VARIANTS),
            flush=True)

    # ---------------- statistics ----------------
    stats: Dict[str, Dict[str, Any]] = {}
    _, stock_med, _ = quantiles(times['MAE'])
    for name in VARIANTS:
        q25, med, q75 = quantiles(times[name])
        paired = [a / b for a, b in zip(times[name], times['MAE'])]
        abs_peaks = [p[0] for p in peaks[name] if p[0] is not None]
        rel_peaks = [p[1] for p in peaks[name] if p[1] is not None]
        stats[name] = dict(
            median_s=med,
            q25_s=q25,
            q75_s=q75,
            iqr_s=q75 - q25,
            ratio_to_mae=med / stock_med,
            paired_ratio_median=statistics.median(paired),
            peak_mem_bytes=max(abs_peaks) if abs_peaks else None,
            step_peak_above_resident_bytes=max(rel_peaks)
            if rel_peaks else None,
            times_s=times[name])
    salience_stats = {}
    for op_name, values in side.items():
        q25, med, q75 = quantiles(values)
        salience_stats[op_name] = dict(
            median_s=med,
            q25_s=q25,
            q75_s=q75,
            fraction_of_mae_step=med / stock_med)

    L = (args.img_size // 16)**2
    stock_keep = int(L * (1 - stock_bb.mask_ratio))
    amr_stats: Dict[str, Dict[str, Any]] = {}
    for name, store in amr_records.items():
        if not store:
            continue
        nv = [v.cpu().long() for v, _ in store]
        ratios = torch.cat([
            r.float().cpu().reshape(-1).expand(v.numel())
            for v, r in zip(nv, (r for _, r in store))
        ])
        k_max = torch.tensor([int(v.max()) for v in nv], dtype=torch.float64)
        visible = torch.tensor([int(v.sum()) for v in nv], dtype=torch.float64)
        slots = torch.tensor([v.numel()
                              for v in nv], dtype=torch.float64) * k_max
        per_step_waste = 1 - visible / slots
        all_nv = torch.cat(nv).double()
        amr_stats[name] = dict(
            steps=len(nv),
            ratio_min=float(ratios.min()),
            ratio_max=float(ratios.max()),
            ratio_mean=float(ratios.mean()),
            mean_within_batch_ratio_range=float(
                statistics.mean(float(r.max() - r.min()) for _, r in store)),
            num_visible_min=int(all_nv.min()),
            num_visible_max=int(all_nv.max()),
            num_visible_mean=float(all_nv.mean()),
            k_max_mean=float(k_max.mean()),
            stock_len_keep=stock_keep,
            encoder_slots_vs_stock=float(k_max.mean() / stock_keep),
            padding_waste_pooled=float(1 - visible.sum() / slots.sum()),
            padding_waste_mean=float(per_step_waste.mean()),
            padding_waste_max=float(per_step_waste.max()))

    # ---------------- report ----------------
    command = ' '.join(shlex.quote(a) for a in [sys.executable] + sys.argv)
    amp = ('off' if not args.amp else
           'float16+GradScaler' if device.type == 'cuda' else 'bfloat16')
    print()
    print(f'command    : {command}')
    print(f'versions   : torch {torch.__version__}, mmpretrain '
          f'{mmpretrain.__version__}, python {platform.python_version()}')
    print(f'device     : {device} -- {device_name(device)}')
    print(f'setting    : MAE ViT-{args.arch.upper()}/16 @ {args.img_size}px '
          f'(L={L}, mask_ratio={stock_bb.mask_ratio}), batch '
          f'{args.batch_size}, amp {amp}, {args.iters} timed steps/variant '
          f'after {args.warmup} warm-up, round-robin, inputs '
          f'{"uniform noise" if not photos else "skimage photos"}')
    print(f'memory     : {memory.kind}')
    print()
    head = (f'{"variant":<11} {"median s":>9} {"IQR s":>17} {"IQR/med":>7} '
            f'{"ratio":>6} {"paired":>6} {"step peak":>11} {"abs peak":>11}')
    print(head)
    print('-' * len(head))
    for name in VARIANTS:
        s = stats[name]
        print(f'{name:<11} {s["median_s"]:>9.4f} '
              f'{s["q25_s"]:>8.4f}-{s["q75_s"]:<8.4f} '
              f'{s["iqr_s"] / s["median_s"]:>7.1%} '
              f'{s["ratio_to_mae"]:>6.3f} {s["paired_ratio_median"]:>6.3f} '
              f'{fmt_bytes(s["step_peak_above_resident_bytes"]):>11} '
              f'{fmt_bytes(s["peak_mem_bytes"]):>11}')
    print('ratio = median / MAE median; paired = median of per-round '
          'variant/MAE; step peak = peak above memory resident before step')
    print()
    head = (f'{"cost alone (same batch)":<36} {"median ms":>10} '
            f'{"% MAE step":>11}')
    print(head)
    print('-' * len(head))
    for op_name, s in salience_stats.items():
        print(f'{op_name:<36} {s["median_s"] * 1e3:>10.2f} '
              f'{s["fraction_of_mae_step"]:>11.2%}')
    print()
    for name, s in amr_stats.items():
        print(f'{name}: ratio per image {s["ratio_min"]:.3f}..'
              f'{s["ratio_max"]:.3f} (mean {s["ratio_mean"]:.3f}, mean '
              f'within-batch range {s["mean_within_batch_ratio_range"]:.3f}); '
              f'visible tokens {s["num_visible_min"]}..{s["num_visible_max"]} '
              f'(mean {s["num_visible_mean"]:.1f}, stock {stock_keep})')
        if name == 'AMR-sample':
            print(
                f'  padding waste 1 - sum(num_visible)/(B*K_max): pooled '
                f'{s["padding_waste_pooled"]:.1%}, per step mean '
                f'{s["padding_waste_mean"]:.1%} max '
                f'{s["padding_waste_max"]:.1%}; mean K_max '
                f'{s["k_max_mean"]:.1f} = {s["encoder_slots_vs_stock"]:.2f}x '
                f'stock encoder length')
    sbm = stats['SBM']
    verdict = 'PASS' if sbm['ratio_to_mae'] <= 1 + TARGET else 'FAIL'
    noise = max(stats[n]['iqr_s'] / stats[n]['median_s']
                for n in ('MAE', 'SBM'))
    if noise > TARGET or args.iters < 5:
        verdict = f'INCONCLUSIVE (would be {verdict})'
    print()
    print(f'SBM / MAE median step time = {sbm["ratio_to_mae"]:.3f} '
          f'(paired {sbm["paired_ratio_median"]:.3f}); target <= '
          f'{1 + TARGET:.2f}: {verdict}')
    if args.iters < 5:
        print('note: fewer than 5 timed steps per variant, no verdict')
    elif noise > TARGET:
        print(f'note: the step-time IQR of MAE/SBM is up to {noise:.1%} of '
              f'the median, wider than the {TARGET:.0%} target; use more '
              '--iters (or a quieter machine) for a conclusive verdict')
    wall = time.perf_counter() - wall_start
    print(f'wall time  : {wall:.1f} s')

    if args.json:
        out = dict(
            command=command,
            versions=dict(
                torch=torch.__version__,
                mmpretrain=mmpretrain.__version__,
                python=platform.python_version()),
            device=str(device),
            device_name=device_name(device),
            args=vars(args),
            amp=amp,
            inputs='uniform noise' if not photos else 'skimage photos',
            num_tokens=L,
            memory_kind=memory.kind,
            variants=stats,
            cost_alone=salience_stats,
            amr=amr_stats,
            target=dict(sbm_max_ratio=1 + TARGET, verdict=verdict),
            wall_time_s=wall)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
        print(f'results    : {args.json}')


if __name__ == '__main__':
    main()
