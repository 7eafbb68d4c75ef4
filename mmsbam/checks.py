"""Early, clear errors for bad input, and atomic checkpoint saves.

Everything here turns a cryptic failure deep inside MMEngine / MMPretrain
(or a silent one) into an error that names the problem and the fix:

- :func:`check_images`: shape, channels and finiteness of the images that
  reach :class:`~mmsbam.SBAMViT` (cheap Python shape checks; the finiteness
  test costs one reduction and, on a GPU, one device sync).
- :func:`check_checkpoint_compatible`: a checkpoint given as ``load_from``,
  ``--resume`` or ``init_cfg=dict(type='Pretrained')`` of the backbone is
  compared, by key and shape only, with the model the config builds, before
  the Runner exists. MMEngine loads all three with ``strict=False`` and only
  warns, so a ViT-L checkpoint "loads" into a ViT-B that then trains from
  scratch.
- :func:`check_dataset_built`: the train / test dataset builds and is not
  empty, with the dataset type and path in the message.
- :class:`NonFiniteLossHook`: stops training at the first NaN/Inf loss,
  before any checkpoint of the broken weights is written.
- :func:`atomic_checkpoint_saves`: MMEngine writes checkpoints straight to
  their final path; an interrupted write leaves a truncated ``epoch_N.pth``.
  With this, a checkpoint is written to ``<path>.tmp-<pid>`` and renamed.
"""
import math
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.hooks import Hook
from torch import Tensor

from mmpretrain.registry import HOOKS

__all__ = [
    'check_images', 'check_checkpoint_compatible', 'checkpoints_to_check',
    'check_dataset_built', 'NonFiniteLossHook', 'atomic_checkpoint_saves'
]


# ---------------------------------------------------------------- images
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
        if C == 1 and in_channels == 3:
            fix = ('convert the images to RGB in the pipeline (e.g. '
                   "LoadImageFromFile(color_type='color')), or train a "
                   'grayscale model: patch_cfg.in_channels=1 (and the '
                   "neck's in_chans, the head's in_channels, one-value "
                   'data_preprocessor mean/std, to_rgb=False)')
        elif C == 3 and in_channels == 1:
            fix = ('load the images as grayscale in the pipeline (e.g. '
                   "LoadImageFromFile(color_type='grayscale')), or build an "
                   'RGB model: patch_cfg.in_channels=3 (and the neck\'s '
                   "in_chans, the head's in_channels, three-value "
                   'data_preprocessor mean/std)')
        else:
            fix = (f'set patch_cfg.in_channels={C} or make the pipeline and '
                   'data_preprocessor produce '
                   f'{in_channels}-channel images')
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


# ----------------------------------------------------------- checkpoints
def _is_local(path) -> bool:
    return isinstance(path, str) and '://' not in path


def _read_state_dict(path: str) -> Dict[str, Tensor]:
    """State dict of an MMEngine (or bare) checkpoint; reads tensors lazily
    (``mmap``) where the file format allows it."""
    try:
        try:
            ckpt = torch.load(path, map_location='cpu', mmap=True)
        except RuntimeError as err:
            if 'mmap' not in str(err):
                raise
            ckpt = torch.load(path, map_location='cpu')  # legacy format
    except Exception as err:
        raise RuntimeError(
            f'cannot read checkpoint {path}: {err}. The file may be '
            'truncated (an interrupted save) or not a PyTorch checkpoint; '
            'use an earlier checkpoint of the work dir.') from err
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict):
        raise RuntimeError(f'{path} holds no state_dict')
    return {re.sub(r'^module\.', '', k): v
            for k, v in ckpt.items() if isinstance(v, Tensor)}


def _model_shapes(model_cfg) -> Dict[str, torch.Size]:
    """Parameter and buffer shapes of the model a config builds, without
    allocating its weights (meta device)."""
    from mmpretrain.registry import MODELS
    try:
        with torch.device('meta'):
            model = MODELS.build(model_cfg)
    except Exception:  # a module that needs real tensors when built
        model = MODELS.build(model_cfg)
    return {k: v.shape for k, v in model.state_dict().items()}


def _resizable(key: str, have: torch.Size, want: torch.Size) -> bool:
    """ViT position embeddings are interpolated on load (a load_state_dict
    pre-hook of MMPretrain's VisionTransformer) when only the token count
    differs."""
    return (key.endswith('pos_embed') and len(have) == len(want) == 3
            and have[-1] == want[-1])


def _compare(ckpt: Dict[str, Tensor], model: Dict[str, torch.Size],
             strict: bool) -> List[str]:
    problems = []
    for key, want in model.items():
        if key not in ckpt:
            if strict:
                problems.append(f'{key}: missing from the checkpoint')
            continue
        have = ckpt[key].shape
        if have != want and not _resizable(key, have, want):
            problems.append(f'{key}: checkpoint {tuple(have)}, model '
                            f'{tuple(want)}')
    if strict:
        problems += [f'{key}: not in the model'
                     for key in ckpt if key not in model]
    if not strict and not set(ckpt) & set(model):
        problems.insert(0, 'no parameter name in common (checkpoint keys '
                        f'start {sorted(ckpt)[:3]}, model keys '
                        f'{sorted(model)[:3]})')
    return problems


def checkpoints_to_check(cfg, init: bool = True
                         ) -> List[Tuple[str, str, Optional[str]]]:
    """``(what, path, prefix)`` for each local checkpoint the Runner will
    load: ``resume`` (as MMEngine resolves it), ``load_from`` and, with
    ``init`` (training initialises weights, testing does not), a
    ``Pretrained`` ``init_cfg`` of ``model.backbone``."""
    from mmengine.runner import find_latest_checkpoint
    found = []
    load_from = cfg.get('load_from')
    if cfg.get('resume'):
        path = load_from or find_latest_checkpoint(cfg.work_dir)
        if path:
            found.append(('resume', path, None))
    elif load_from:
        found.append(('load_from', load_from, None))
    backbone = cfg.model.get('backbone') if 'model' in cfg else None
    inits = backbone.get('init_cfg') if isinstance(backbone, dict) else None
    if not init:
        inits = None
    for item in (inits if isinstance(inits, (list, tuple)) else [inits]):
        if isinstance(item, dict) and item.get('type') == 'Pretrained' and \
                item.get('checkpoint'):
            found.append(('model.backbone.init_cfg (Pretrained)',
                          item['checkpoint'], item.get('prefix')))
    return [f for f in found if _is_local(f[1])]


def check_checkpoint_compatible(cfg, for_test: bool = False,
                                max_listed: int = 8) -> None:
    """Raise ``RuntimeError`` if a checkpoint the config loads does not fit
    its model.

    ``resume`` must match exactly (every key, every shape). ``load_from``
    and the backbone's ``Pretrained`` init keep MMEngine's tolerance for
    missing and unexpected keys (a pre-training checkpoint into a
    classifier), but a shape mismatch, or no key in common, is an error:
    MMEngine would skip those weights with a warning and train from random
    ones. ``for_test=True`` (``tools/test.py``: the checkpoint to
    evaluate) treats ``load_from`` like ``resume`` and skips the
    ``Pretrained`` init, which testing does not run. Only names and shapes
    are read (``mmap``), nothing is copied.
    """
    todo = checkpoints_to_check(cfg, init=not for_test)
    if not todo:
        return
    model_shapes = None
    for what, path, prefix in todo:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what}: checkpoint {path} does not '
                                    'exist')
        ckpt = _read_state_dict(path)
        if model_shapes is None:
            model_shapes = _model_shapes(cfg.model)
        model = model_shapes
        if prefix is not None:  # Pretrained init of the backbone
            p = prefix if prefix.endswith('.') else prefix + '.'
            ckpt = {k[len(p):]: v for k, v in ckpt.items()
                    if k.startswith(p)}
            model = {k[len('backbone.'):]: v for k, v in model.items()
                     if k.startswith('backbone.')}
        elif what.startswith('model.backbone'):
            model = {k[len('backbone.'):]: v for k, v in model.items()
                     if k.startswith('backbone.')}
        strict = what == 'resume' or (what == 'load_from'
                                      and for_test)
        problems = _compare(ckpt, model, strict=strict)
        if problems:
            shown = '\n  '.join(problems[:max_listed])
            more = len(problems) - max_listed
            more = f'\n  ... and {more} more' if more > 0 else ''
            raise RuntimeError(
                f'{what}: checkpoint {path} does not fit the model of this '
                f'config ({len(problems)} mismatches):\n  {shown}{more}\n'
                'Is it from another architecture (e.g. ViT-L into a ViT-B '
                'config) or another in_channels / patch_size? Use the config '
                'the checkpoint was trained with, or a matching checkpoint.')


# --------------------------------------------------------------- datasets
def _describe_dataset(cfg) -> str:
    if not isinstance(cfg, dict):
        return type(cfg).__name__
    parts = [str(cfg.get('type'))]
    for key in ('data_root', 'data_prefix', 'ann_file'):
        if cfg.get(key):
            parts.append(f'{key}={cfg[key]!r}')
    return ' '.join(parts)


def check_dataset_built(runner, split: str = 'train') -> None:
    """Build ``runner``'s ``<split>_dataloader`` now (the Runner keeps it,
    so nothing is built twice) and raise ``RuntimeError`` with the dataset
    and path if that fails or the dataset is empty."""
    cfg = runner.cfg.get(f'{split}_dataloader') or {}
    desc = _describe_dataset(cfg.get('dataset') if isinstance(cfg, dict)
                             else None)
    try:
        loader = getattr(runner, f'{split}_dataloader')
    except Exception as err:
        hint = ''
        if 'need at least one array to concatenate' in str(err):
            hint = (' The dataset is empty (no images found, an empty '
                    'annotation file, or indices=0).')
        raise RuntimeError(
            f'{split}_dataloader.dataset ({desc}) could not be built: '
            f'{err}.{hint} Check the path in the config (or '
            f'--cfg-options {split}_dataloader.dataset.data_root=...).'
        ) from err
    if len(loader.dataset) == 0 or len(loader) == 0:
        raise RuntimeError(
            f'{split}_dataloader.dataset ({desc}) is empty: '
            f'{len(loader.dataset)} samples, {len(loader)} batches. Check '
            'the path, the annotation file and any indices / filter.')


# ------------------------------------------------------------------ loss
@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training at the first non-finite loss, with the iteration and
    the likely causes in the message.

    It reads the loss that MMEngine's ``RuntimeInfoHook`` has already moved
    to the host, so it adds no device sync. It runs before
    ``CheckpointHook``, so the broken weights are never saved; the
    optimiser step of that iteration has already happened in memory.

    Args:
        patience (int): Consecutive non-finite losses tolerated (with
            ``AmpOptimWrapper``'s dynamic loss scale an occasional overflow
            is skipped by the scaler). Defaults to 1: stop at the first.
    """
    priority = 'ABOVE_NORMAL'

    def __init__(self, patience: int = 1) -> None:
        self.patience = patience
        self._bad = 0

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not isinstance(outputs, dict) or 'loss' not in outputs:
            return
        try:  # already a float in the message hub: no device sync
            loss = runner.message_hub.get_scalar('train/loss').current()
        except KeyError:
            loss = float(outputs['loss'])
        if math.isfinite(loss):
            self._bad = 0
            return
        self._bad += 1
        if self._bad < self.patience:
            return
        raise FloatingPointError(
            f'loss is {loss} at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}): training stopped before saving a '
            'checkpoint of NaN weights. Likely causes: NaN/Inf pixels in the '
            'data (float images, or a data_preprocessor std of 0), or a '
            'learning rate too high. Resume from the last good checkpoint '
            'with --resume.')


# ----------------------------------------------------------- checkpoints
def _atomic(save):
    def save_checkpoint(checkpoint, filename, *args, **kwargs):
        if not _is_local(str(filename)):
            return save(checkpoint, filename, *args, **kwargs)
        filename = str(filename)
        tmp = f'{filename}.tmp-{os.getpid()}'
        try:
            save(checkpoint, tmp, *args, **kwargs)
            os.replace(tmp, filename)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)

    save_checkpoint.__wrapped__ = save
    save_checkpoint._mmsbam_atomic = True
    return save_checkpoint


def atomic_checkpoint_saves() -> None:
    """Make ``Runner.save_checkpoint`` write to a temporary file and rename
    it (``os.replace``, atomic on POSIX), so an interrupted save leaves the
    previous file and no truncated ``epoch_N.pth``. Idempotent; local paths
    only (``s3://`` etc. are written as before). ``CheckpointHook`` writes
    ``last_checkpoint`` only after the save returns."""
    import mmengine.runner.runner as runner_module
    if not getattr(runner_module.save_checkpoint, '_mmsbam_atomic', False):
        runner_module.save_checkpoint = _atomic(runner_module.save_checkpoint)
