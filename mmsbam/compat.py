"""Deliberate fixes for the MMEngine 0.10.7 / torch >= 2.6 / mmpretrain 1.2.0
stack. Each one is small, named and explained here and in
docs/stack_fixes.md.

1. Checkpoints. torch >= 2.6 loads with ``weights_only=True`` by default and
   refuses MMEngine's checkpoints, whose ``message_hub`` pickles
   ``HistoryBuffer`` objects (with numpy arrays and references to the
   buffer's statistics methods). Rather than turning the safe loader off, we
   allow exactly those objects: ``HistoryBuffer``, numpy arrays, dtypes and
   scalars, and a *restricted* ``getattr`` that resolves only
   ``HistoryBuffer``'s registered statistics methods. Every other global in a
   checkpoint is still refused by torch. This covers ``--resume``,
   ``load_from``, ``init_cfg=dict(type='Pretrained')`` and
   ``tools/test.py``, which all go through ``torch.load``.
2. Configs inheriting ``mmpretrain::...`` get ``_scope_`` written into every
   dict with a ``type``; MMEngine's Runner passes the ``collate_fn`` dict's
   remaining keys to the function (``default_collate() got an unexpected
   keyword argument '_scope_'``). :func:`strip_collate_scope` removes it.
3. MMEngine writes checkpoints straight to their final path; an
   interrupted write leaves a truncated ``epoch_N.pth``.
   :func:`atomic_checkpoint_saves` makes ``Runner.save_checkpoint`` write
   ``<path>.tmp-<pid>`` and rename it.
4. mmcv 2.2.0's ``adjust_hue`` (pillow backend, what MMPretrain's
   ``ColorJitter`` uses) adds ``np.uint8(hue_factor * 255)``, which numpy >=
   2 refuses for a negative factor (``OverflowError``), so every pipeline
   with ``ColorJitter(hue>0)`` (CMAE's, iBoT's, BYOL's) fails at its first
   negative draw. :func:`fix_adjust_hue` shifts the hue channel by that
   amount modulo 256 instead, as numpy 1's wrap-around did.
"""
import os
import os.path as osp
import pickle
from typing import Any, Callable

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = [
    'allow_mmengine_checkpoints', 'strip_collate_scope',
    'atomic_checkpoint_saves', 'fix_adjust_hue'
]


#: Registered by every HistoryBuffer instance; the class dict is empty until
#: the first one exists, so they are listed here too.
_DEFAULT_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` inside checkpoints.

    Pickle protocol 2 stores ``HistoryBuffer.mean`` as
    ``getattr(HistoryBuffer, 'mean')``; nothing else is resolved.
    """
    allowed = _DEFAULT_STATISTICS | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'mmsbam refuses getattr({obj!r}, {name!r}) while loading a '
        'checkpoint: only HistoryBuffer statistics methods are allowed.')


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read MMEngine checkpoints.

    Idempotent; called when :mod:`mmsbam` is imported.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4 loads with weights_only=False anyway
        return
    multiarray = getattr(np, '_core', None) or np.core
    dtype_classes = [
        type(np.dtype(t))
        for t in (np.float16, np.float32, np.float64, np.int8, np.int16,
                  np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                  np.uint64, np.bool_)
    ]
    add([
        HistoryBuffer,
        multiarray.multiarray._reconstruct,
        multiarray.multiarray.scalar,
        np.ndarray,
        np.dtype,
        *dtype_classes,
        (_history_buffer_getattr, 'builtins.getattr'),
    ])


def strip_collate_scope(cfg) -> None:
    """Drop ``_scope_`` from every dataloader's ``collate_fn`` in place."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, dict) and isinstance(
                loader.get('collate_fn'), dict):
            loader['collate_fn'].pop('_scope_', None)


def _atomic(save):
    def save_checkpoint(checkpoint, filename, *args, **kwargs):
        if '://' in str(filename):  # s3://, http://: as before
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


def _hue_shifted(img: np.ndarray, hue_factor: float) -> np.ndarray:
    """A BGR uint8 image with its HSV hue channel shifted cyclically by
    ``int(hue_factor * 255)`` (mod 256), through pillow."""
    from PIL import Image
    hsv = np.array(Image.fromarray(np.ascontiguousarray(img[..., ::-1]),
                                   mode='RGB').convert('HSV'))
    hsv[..., 0] = (hsv[..., 0].astype(np.int64) +
                   int(hue_factor * 255)) % 256
    rgb = Image.fromarray(hsv.astype(np.uint8), mode='HSV').convert('RGB')
    return np.array(rgb, dtype=img.dtype)[..., ::-1]


def fix_adjust_hue() -> None:
    """Make ``mmcv.adjust_hue`` work under numpy >= 2 (fix 4 above):
    negative factors on 3-channel uint8 images with the pillow backend go
    through :func:`_hue_shifted`; every other call is mmcv's own."""
    try:
        import mmcv
        import mmcv.image.photometric as photometric
    except ImportError:  # no mmcv: nothing to fix
        return
    original = photometric.adjust_hue
    if getattr(original, '_mmsbam_fixed', False):
        return

    def adjust_hue(img, hue_factor, backend=None):
        from mmcv.image import io
        pillow = (backend or io.imread_backend) == 'pillow'
        if pillow and hue_factor < 0 and isinstance(img, np.ndarray) and \
                img.ndim == 3 and img.shape[-1] == 3 and \
                img.dtype == np.uint8 and hue_factor >= -0.5:
            return _hue_shifted(img, hue_factor)
        return original(img, hue_factor, backend=backend)

    adjust_hue._mmsbam_fixed = True
    adjust_hue.__doc__ = original.__doc__
    photometric.adjust_hue = adjust_hue
    mmcv.adjust_hue = adjust_hue
    if hasattr(mmcv, 'image'):
        mmcv.image.adjust_hue = adjust_hue
