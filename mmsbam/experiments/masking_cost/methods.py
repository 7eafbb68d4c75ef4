"""The cost of SBAM over any stock method, from the method's SBAM config.

Every SBAM config ``configs/<method>/<stock name>_sbam.py`` is MMPretrain's
stock config with ``model.backbone.type`` switched to the SBAM class. From
one such config two models are built with the same initial weights: the
SBAM model and the stock model (the backbone type switched back, the
SBAM-only backbone arguments dropped). One real training batch is made by
the config's own train pipeline (``LoadImageFromFile`` skipped) on
in-memory images, so mask-token methods get the pipeline's masks. Then
optimizer-free train steps (``model.loss``, ``parse_losses``, backward,
zero grads) alternate stock / SBAM for some rounds after a warm-up, and the
median step times and the SBAM / stock ratio (median and p10-p90 of the
per-round paired ratios) are reported.

Mask-token SBAM backbones rewrite the mask they are given in place, so
every step gets fresh copies of the pipeline masks.
"""
import copy
import os.path as osp
import statistics
import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from ...analysis.images import skimage_photos
from ...analysis.models import build_model, load_config
from .measure import synchronize

__all__ = [
    'SBAM_ONLY_KEYS', 'stock_type', 'stock_model_cfg', 'shrink_model_cfg',
    'random_targets', 'method_config', 'build_method_models', 'input_images',
    'pipeline_batch', 'MethodBatch', 'method_step', 'decile_spread',
    'measure_method', 'method_label', 'format_method_table'
]

#: Backbone arguments only the SBAM classes take.
SBAM_ONLY_KEYS = ('mask_unit', 'masker', 'noise_scale', 'temperature',
                  'salience_source', 'salience_layer', 'amr',
                  'mask_generator')
#: Transforms that read files; the batch comes from in-memory images.
FILE_LOADERS = ('LoadImageFromFile', 'mmpretrain.LoadImageFromFile')


def stock_type(sbam_type: str) -> str:
    """The stock backbone type of an SBAM type: ``SBAMViT`` -> ``MAEViT``,
    otherwise the ``SBAM`` prefix stripped.

    Args:
        sbam_type (str): A registered SBAM backbone type.

    Returns:
        str: The stock MMPretrain type.
    """
    if sbam_type == 'SBAMViT':
        return 'MAEViT'
    if not sbam_type.startswith('SBAM'):
        raise ValueError(f'{sbam_type!r} is not an SBAM backbone type')
    return sbam_type[len('SBAM'):]


def stock_model_cfg(model_cfg: dict) -> dict:
    """The stock model config of an SBAM model config (a deep copy).

    Args:
        model_cfg (dict): Model config with an SBAM backbone.

    Returns:
        dict: The same config, backbone type switched to the stock one and
        :data:`SBAM_ONLY_KEYS` dropped from the backbone; an SBAM algorithm
        or neck type (CAE's ``SBAMCAE``, ``SBAMCAENeck``) switched back too.
    """
    cfg = copy.deepcopy(model_cfg)
    backbone = cfg['backbone']
    backbone['type'] = stock_type(backbone['type'])
    for module in (cfg, cfg.get('neck') or {}):
        if str(module.get('type', '')).startswith('SBAM'):
            module['type'] = stock_type(module['type'])
    for key in SBAM_ONLY_KEYS:
        backbone.pop(key, None)
    return cfg


def _backbone_width(backbone: dict) -> Optional[int]:
    """Output width of the backbone config (from its class's ``arch_zoo``;
    Swin's last stage is 8x its ``embed_dims``), None where unknown."""
    from mmpretrain.registry import MODELS
    arch = backbone.get('arch', 'base')
    if isinstance(arch, dict):
        width = arch.get('embed_dims')
    else:
        zoo = getattr(MODELS.get(backbone['type']), 'arch_zoo', {})
        width = zoo.get(arch, {}).get('embed_dims')
    if width is not None and 'Swin' in backbone['type']:
        width *= 8
    return width


def _shrunk_arch(backbone_type: str, dims: int, depth: int,
                 heads: int) -> dict:
    """A ViT (or Swin, HiViT) arch of width ``dims`` and ``depth`` blocks
    (Swin: ``dims // 4`` doubling per stage, depths [1, 1, depth, 1];
    HiViT: depths [1, 1, depth])."""
    if 'Swin' in backbone_type:
        return dict(embed_dims=dims // 4, depths=[1, 1, depth, 1],
                    num_heads=[heads * 2**i for i in range(4)])
    if 'HiViT' in backbone_type:
        return dict(embed_dims=dims, depths=[1, 1, depth], num_heads=heads)
    return dict(embed_dims=dims, num_layers=depth, num_heads=heads,
                feedforward_channels=4 * dims)


def _shrink_module(cfg: Optional[dict], old: Optional[int], new: int,
                   dims: int, depth: int, heads: int) -> None:
    """Shrink a neck or head config in place: widths equal to the old
    backbone width, decoder widths, depths and heads."""
    if not cfg:
        return
    for key in ('embed_dim', 'embed_dims', 'in_channels'):
        if old is not None and cfg.get(key) == old:
            cfg[key] = new
    rules = dict(decoder_embed_dim=dims, decoder_depth=max(1, depth // 2),
                 regressor_depth=max(1, depth // 2), decoder_num_heads=heads,
                 num_heads=heads, early_layers=max(1, depth - 3))
    for key, value in rules.items():
        if key in cfg:
            cfg[key] = value
    if 'backbone_arch' in cfg:  # BEiT v2's neck repeats backbone blocks
        cfg['backbone_arch'] = dict(embed_dims=dims, depth=depth,
                                    num_layers=depth, num_heads=heads,
                                    feedforward_channels=4 * dims)


def _shrink_target(cfg: Optional[dict], dims: int, depth: int,
                   heads: int) -> None:
    """Shrink a target network in place: DALL-E to 32 hidden channels,
    VQ-KD's ViT encoder to the shrunk ViT (HOG has nothing to shrink)."""
    if not cfg:
        return
    if cfg.get('type') == 'DALL-E':
        cfg['n_hid'] = 32
    elif cfg.get('type') == 'VQKD':
        cfg['encoder_config']['arch'] = _shrunk_arch('ViT', dims, depth,
                                                     heads)


def _clip_out_indices(backbone: dict, depth: int) -> None:
    """Keep non-negative ``out_indices`` inside ``depth`` blocks (MFF's
    [0, 2, ..., 11] becomes the last indices that exist)."""
    idx = backbone.get('out_indices')
    if not isinstance(idx, (list, tuple)) or all(i < depth for i in idx):
        return
    backbone['out_indices'] = list(range(depth))[-min(len(idx), depth):]


def shrink_model_cfg(model_cfg: dict, dims: int = 192, depth: int = 4,
                     heads: int = 3) -> dict:
    """A smaller model of the same method, generically: the ViT / Swin /
    HiViT backbone shrunk to ``dims`` wide and ``depth`` blocks, the neck
    and head widths that matched the backbone's output width re-matched,
    decoders to ``dims`` wide and ``depth // 2`` blocks, target networks
    shrunk (:func:`_shrink_target`). Image sizes stay the config's.

    Args:
        model_cfg (dict): A model config (not modified).
        dims (int): Backbone width (Swin: width of stage 3). Defaults to 192.
        depth (int): Backbone blocks (Swin, HiViT: of stage 3). Defaults to 4.
        heads (int): Attention heads (Swin: of stage 1). Defaults to 3.

    Returns:
        dict: The shrunk model config.
    """
    cfg = copy.deepcopy(model_cfg)
    backbone = cfg['backbone']
    old = _backbone_width(backbone)
    backbone['arch'] = _shrunk_arch(backbone['type'], dims, depth, heads)
    new = _backbone_width(backbone)
    _clip_out_indices(backbone, depth)
    for name in ('neck', 'head'):
        _shrink_module(cfg.get(name), old, new, dims, depth, heads)
    _shrink_target(cfg.get('target_generator'), dims, depth, heads)
    return cfg


def random_targets(cfg: Any) -> Any:
    """Drop every ``Pretrained`` ``init_cfg`` (target networks' checkpoints)
    from a config tree in place, so target networks keep random weights
    and nothing is downloaded. Returns ``cfg``."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            random_targets(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            random_targets(value)
    return cfg


def method_config(path: str, cfg_options: Optional[dict] = None,
                  tiny: bool = False) -> Any:
    """The SBAM config of a method, ready to build in process.

    Args:
        path (str): ``configs/<method>/<stock name>_sbam.py``.
        cfg_options (dict, optional): Merged into the config first (as
            ``--cfg-options``). Defaults to None.
        tiny (bool): Shrink the model with :func:`shrink_model_cfg`.
            Defaults to False.

    Returns:
        mmengine.Config: With ``model.data_preprocessor`` set from the
        top-level one (as MMEngine's Runner does) and target checkpoints
        dropped (:func:`random_targets`).
    """
    import mmsbam.models  # noqa: F401  (registers the SBAM backbones)
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = load_config(path, copy.deepcopy(cfg_options))
    model = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        pre = cfg.data_preprocessor
        model.setdefault('data_preprocessor',
                         pre.to_dict() if hasattr(pre, 'to_dict') else pre)
    if tiny:
        model = shrink_model_cfg(model)
    cfg.model = random_targets(model)
    return cfg


def build_method_models(model_cfg: dict, device: torch.device,
                        seed: int = 0) -> Dict[str, nn.Module]:
    """The stock and the SBAM model of one SBAM model config, with the
    stock model's initial weights loaded (strict) into the SBAM model.

    Args:
        model_cfg (dict): Model config with an SBAM backbone.
        device (torch.device): Where the models go.
        seed (int): Seed of the initial weights. Defaults to 0.

    Returns:
        dict: ``{'stock': model, 'sbam': model}``, in training mode.
    """
    from mmpretrain.registry import MODELS
    stock = build_model(stock_model_cfg(model_cfg), seed)
    torch.manual_seed(seed)
    sbam = MODELS.build(copy.deepcopy(model_cfg))
    sbam.init_weights()  # as the Runner does (e.g. freezes CAE's teacher)
    sbam.load_state_dict(stock.state_dict(), strict=True)
    return {n: m.to(device).train() for n, m in
            (('stock', stock), ('sbam', sbam))}


def input_images(source: str, count: int, channels: int = 3,
                 seed: int = 0) -> List[np.ndarray]:
    """In-memory images as ``LoadImageFromFile`` would give them.

    Args:
        source (str): ``'photos'`` (the colour photos of ``skimage.data``,
            cycled; noise where scikit-image is missing) or ``'synthetic'``
            (uniform noise, 256 x 256).
        count (int): Number of images.
        channels (int): 3 gives BGR (H, W, 3) uint8 (as mmcv loads), 1 grey
            (H, W). Defaults to 3.
        seed (int): Seed of the noise. Defaults to 0.

    Returns:
        list[np.ndarray]: ``count`` uint8 images.
    """
    photos = [img for _, img in skimage_photos()] if source == 'photos' \
        else []
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        img = photos[i % len(photos)][..., :3] if photos else rng.integers(
            0, 256, (256, 256, 3), dtype=np.uint8)
        img = np.ascontiguousarray(img[..., ::-1])  # RGB -> BGR
        if channels == 1:
            img = img.astype(np.float32) @ np.array([0.114, 0.587, 0.299],
                                                   dtype=np.float32)
            img = img.round().clip(0, 255).astype(np.uint8)
        images.append(img)
    return images


class MethodBatch:
    """One preprocessed training batch and pristine copies of its masks.

    Args:
        inputs (Tensor | list[Tensor]): Preprocessed images.
        data_samples (list): The pipeline's ``DataSample`` s.
    """

    def __init__(self, inputs: Any, data_samples: List[Any]) -> None:
        self.inputs = inputs
        self.data_samples = data_samples
        self.masks = [
            ds.mask.clone() if 'mask' in ds else None for ds in data_samples
        ]

    @property
    def has_masks(self) -> bool:
        """Whether the pipeline drew masks (mask-token methods)."""
        return any(m is not None for m in self.masks)

    def fresh(self) -> List[Any]:
        """The data samples with fresh copies of the pipeline masks."""
        for ds, mask in zip(self.data_samples, self.masks):
            if mask is not None:
                ds.mask = mask.clone()
        return self.data_samples


def pipeline_batch(cfg: Any, model: nn.Module, images: List[np.ndarray],
                   seed: int = 0) -> MethodBatch:
    """One training batch from the config's own train pipeline.

    Args:
        cfg (mmengine.Config): From :func:`method_config`.
        model (nn.Module): Its ``data_preprocessor`` preprocesses the batch
            (and moves it to the model's device).
        images (list[np.ndarray]): From :func:`input_images`.
        seed (int): Seed of the pipeline's random draws. Defaults to 0.

    Returns:
        MethodBatch: The preprocessed batch.
    """
    from mmengine.dataset import Compose, default_collate
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS
    # MMPretrain's scope: wrappers (MultiView) build their inner transforms
    # through mmcv's registry, which finds mmpretrain's (and mmsbam's
    # ShiftPixel) only from the default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        transform = Compose([
            TRANSFORMS.build(copy.deepcopy(t))
            for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] not in FILE_LOADERS
        ])
    np.random.seed(seed)  # mmcv / mmpretrain transforms draw from numpy
    torch.manual_seed(seed)
    items = [
        transform(dict(img=img, img_shape=img.shape[:2],
                       ori_shape=img.shape[:2], sample_idx=i))
        for i, img in enumerate(images)
    ]
    data = dict(inputs=default_collate([it['inputs'] for it in items]),
                data_samples=[it['data_samples'] for it in items])
    data = model.data_preprocessor(data, True)
    return MethodBatch(data['inputs'], data['data_samples'])


def _autocast(amp: bool, device: torch.device) -> ContextManager:
    """float16 autocast on CUDA, bfloat16 elsewhere; a no-op without amp."""
    if not amp:
        return nullcontext()
    dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def method_step(model: nn.Module, batch: MethodBatch, amp: bool,
                device: torch.device) -> float:
    """One timed optimizer-free train step: ``model.loss``,
    ``parse_losses``, backward, zero grads (fresh masks, not timed).

    Returns:
        float: Wall-clock seconds, synchronized on CUDA.
    """
    data_samples = batch.fresh()
    synchronize(device)
    start = time.perf_counter()
    with _autocast(amp, device):
        losses = model.loss(batch.inputs, data_samples)
        loss, _ = model.parse_losses(losses)
    loss.backward()
    model.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - start


def decile_spread(values: List[float]) -> Dict[str, float]:
    """Median, p10 and p90 (linear interpolation) of ``values``."""
    if len(values) == 1:
        v = values[0]
        return dict(median=v, p10=v, p90=v)
    q = statistics.quantiles(values, n=10, method='inclusive')
    return dict(median=statistics.median(values), p10=q[0], p90=q[-1])


def _mask_recorder(model: nn.Module, store: List[Tensor]) -> Callable:
    """A forward pre-hook on the backbone recording the mask it is given
    (positional argument 1, as the mask-token algorithms pass it)."""
    def hook(_module: nn.Module, args: tuple) -> None:
        if len(args) > 1 and isinstance(args[1], Tensor):
            store.append(args[1].detach().clone())
    return model.backbone.register_forward_pre_hook(hook)


def _masks_match(seen: List[Tensor], batch: MethodBatch) -> Optional[bool]:
    """Whether every mask the stock backbone saw is the pipeline's."""
    if not batch.has_masks:
        return None
    expected = torch.stack(batch.masks).flatten(1).float()
    return bool(seen) and all(
        torch.equal(m.flatten(1).float().cpu(), expected.cpu()) for m in seen)


def _run_rounds(models: Dict[str, nn.Module], batch: MethodBatch,
                rounds: int, warmup: int, amp: bool, device: torch.device,
                log: Callable[[str], None]) -> Dict[str, List[float]]:
    """Warm-up, then ``rounds`` rounds of one step per model, the first
    model alternating; the timed step seconds per model."""
    names = ['stock', 'sbam']
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else names[::-1]
        step = {n: method_step(models[n], batch, amp, device) for n in order}
        if r >= warmup:
            for n in names:
                times[n].append(step[n])
        log(f'  round {r + 1}/{warmup + rounds}'
            f'{" (warm-up)" if r < warmup else ""}: stock '
            f'{step["stock"] * 1e3:.1f} ms, SBAM {step["sbam"] * 1e3:.1f} ms')
    return times


def measure_method(config: str,
                   cfg_options: Optional[dict] = None,
                   tiny: bool = False,
                   rounds: int = 10,
                   warmup: int = 1,
                   batch_size: int = 8,
                   device: str = 'cpu',
                   amp: bool = False,
                   images: str = 'photos',
                   seed: int = 0,
                   log: Callable[[str], None] = print) -> Dict[str, Any]:
    """The cost of SBAM over the stock method of one SBAM config.

    Args:
        config (str): ``configs/<method>/<stock name>_sbam.py``.
        cfg_options (dict, optional): Merged into the config first.
        tiny (bool): Shrink the model (:func:`shrink_model_cfg`).
        rounds (int): Timed rounds (one step of each model per round).
        warmup (int): Untimed rounds first.
        batch_size (int): Images in the batch.
        device (str): Torch device.
        amp (bool): Autocast (float16 on CUDA, bfloat16 on CPU).
        images (str): ``'photos'`` or ``'synthetic'`` (:func:`input_images`).
        seed (int): Seed of the weights and the pipeline.
        log (Callable): Progress lines. Defaults to ``print``.

    Returns:
        dict: ``method``, ``config``, ``stock_type``, ``sbam_type``, median
        step seconds (``stock_s``, ``sbam_s``), ``ratio`` (median, p10, p90
        of the per-round SBAM / stock ratios), ``ratio_of_medians``, the
        step times, ``mask_token`` (whether the pipeline drew masks),
        ``sbam_maskers_recorded`` and ``stock_maskers`` (SalienceMaskers
        with a record; the stock model must have none),
        ``stock_masks_are_pipeline`` (None for token-dropping methods).
    """
    from mmengine.logging import MessageHub

    from mmsbam.masking import find_maskers
    dev = torch.device(device)
    cfg = method_config(config, cfg_options, tiny)
    # EMA targets (CosineEMA: CMAE, iBoT) read the run length from the
    # message hub, as under a Runner
    hub = MessageHub.get_current_instance()
    if hub.get_info('max_iters') is None:
        hub.update_info('max_iters', warmup + rounds + 1)
    models = build_method_models(cfg.model, dev, seed)
    channels = len(cfg.model['data_preprocessor'].get('mean') or [0] * 3)
    batch = pipeline_batch(cfg, models['stock'],
                           input_images(images, batch_size, channels, seed),
                           seed)
    seen: List[Tensor] = []
    handle = _mask_recorder(models['stock'], seen)
    try:
        times = _run_rounds(models, batch, rounds, warmup, amp, dev, log)
    finally:
        handle.remove()
    paired = [s / t for s, t in zip(times['sbam'], times['stock'])]
    stock_s = statistics.median(times['stock'])
    sbam_s = statistics.median(times['sbam'])
    sbam_type = cfg.model['backbone']['type']
    return dict(
        method=method_label(config),
        config=config, stock_type=stock_type(sbam_type), sbam_type=sbam_type,
        tiny=tiny, batch_size=batch_size, rounds=rounds, warmup=warmup,
        stock_s=stock_s, sbam_s=sbam_s, ratio=decile_spread(paired),
        ratio_of_medians=sbam_s / stock_s, times_s=times,
        mask_token=batch.has_masks,
        sbam_maskers_recorded=sum(
            m.last_masking is not None
            for m in find_maskers(models['sbam']).values()),
        stock_maskers=len(find_maskers(models['stock'])),
        stock_masks_are_pipeline=_masks_match(seen, batch))


def method_label(config: str) -> str:
    """The config name up to its second ``_``: ``mae_vit-base-p16``,
    ``itpn-pixel_hivit-base-p16``."""
    return '_'.join(osp.basename(config).split('_')[:2])


def format_method_table(results: List[Dict[str, Any]]) -> str:
    """A markdown table: method, stock type, SBAM type, stock ms, SBAM ms,
    ratio (median of the paired ratios, p10-p90); failed methods (a
    result with ``error``) listed with their error."""
    lines = ['| method | stock type | SBAM type | stock ms | SBAM ms | '
             'ratio (median, p10–p90) |', '|---|---|---|---|---|---|']
    for r in results:
        if 'error' in r:
            lines.append(f'| {r["method"]} | — | — | — | — | failed: '
                         f'{r["error"]} |')
            continue
        q = r['ratio']
        lines.append(
            f'| {r["method"]} | {r["stock_type"]} | {r["sbam_type"]} | '
            f'{r["stock_s"] * 1e3:.1f} | {r["sbam_s"] * 1e3:.1f} | '
            f'{q["median"]:.3f} ({q["p10"]:.3f}–{q["p90"]:.3f}) |')
    return '\n'.join(lines)
