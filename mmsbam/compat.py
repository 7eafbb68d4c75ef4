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
    'atomic_checkpoint_saves'
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
