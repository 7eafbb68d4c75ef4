"""``iBOTTeacherTempHook``: iBoT's teacher-temperature schedules.

The official iBoT loss (``main_ibot.py``, ``iBOTLoss``) takes the teacher
temperatures of the CLS and the patch distributions from per-epoch tables:
a linear warm-up (``np.linspace`` over ``warmup_teacher_temp_epochs``), then
the final value; the patch table is first held at its warm-up value for
``pred_start_epoch`` epochs, the epochs without masks. This hook computes the
same values from the current epoch and writes them into the head's
``teacher_temp`` and ``teacher_patch_temp`` attributes before each epoch, so
a resumed run gets the value of its epoch without any saved state. It reads
``pred_start_epoch`` from the model's mask generator, the one place it is set.
"""
import math
import numbers
from typing import Optional, Tuple

import numpy as np
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

__all__ = ['iBOTTeacherTempHook', 'teacher_temp_at']


def teacher_temp_at(epoch: int,
                    warmup: float,
                    final: float,
                    warmup_epochs: int,
                    start_epoch: int = 0) -> float:
    """The teacher temperature of one epoch, as the official tables give it.

    ``warmup`` for the first ``start_epoch`` epochs, then
    ``np.linspace(warmup, final, warmup_epochs)`` for ``warmup_epochs``
    epochs, then ``final``. With the defaults 0.04 -> 0.07 over 30 epochs:
    ``0.04 + 0.03 * e / 29`` for ``e <= 29`` (0.07 at epoch 29). Note
    ``np.linspace``'s convention for one epoch of warm-up: that epoch gets
    ``warmup``.

    Args:
        epoch (int): Epoch (0-based), or iteration with iteration counts.
        warmup (float): Temperature at the start of the warm-up.
        final (float): Temperature after the warm-up.
        warmup_epochs (int): Length of the warm-up (0: ``final`` at once).
        start_epoch (int): Epochs held at ``warmup`` before the warm-up
            starts. Defaults to 0.

    Returns:
        float: The temperature.
    """
    step = epoch - start_epoch
    if step < 0:
        return float(warmup)
    if step < warmup_epochs:
        return float(np.linspace(warmup, final, warmup_epochs)[step])
    return float(final)


def _check_count(value, key: str) -> int:
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
            or value < 0):
        raise ValueError(f'{key} must be an integer >= 0, got {value!r}')
    return int(value)


@HOOKS.register_module()
class iBOTTeacherTempHook(Hook):
    """Set the iBoT head's teacher temperatures from the epoch.

    Before every training epoch, the head of the (unwrapped, so with or
    without DDP) model gets ``head.teacher_temp`` (CLS) and
    ``head.teacher_patch_temp`` (patches) from :func:`teacher_temp_at` at
    ``runner.epoch``. The values are logged at the first epoch and whenever
    they change. With ``by_epoch=False`` the counts are iterations and the
    values are set before every iteration (for an ``IterBasedTrainLoop``,
    whose epoch never changes); they are then logged at the first
    iteration and when the warm-up ends.

    The patch temperature stays at ``warmup_teacher_patch_temp`` for the
    first ``model.mask_generator.pred_start_epoch`` epochs (the official
    ``mim_start_epoch``: the masks and this delay are one setting, made on
    the mask generator; a generator without it counts as 0). That count is
    in epochs, so with ``by_epoch=False`` it must be 0.

    Example:
        >>> custom_hooks = [
        ...     dict(type='iBOTTeacherTempHook', warmup_teacher_temp=0.04,
        ...          teacher_temp=0.07, warmup_teacher_patch_temp=0.04,
        ...          teacher_patch_temp=0.07, warmup_epochs=30)
        ... ]

    Args:
        warmup_teacher_temp (float): CLS temperature at the start of the
            warm-up. Defaults to 0.04.
        teacher_temp (float): CLS temperature after the warm-up. Defaults to
            0.04 (official argparse; the README recipes use 0.07).
        warmup_teacher_patch_temp (float): Patch temperature at the start of
            the warm-up. Defaults to 0.04.
        teacher_patch_temp (float): Patch temperature after the warm-up.
            Defaults to 0.07.
        warmup_epochs (int): Length of both warm-ups. Defaults to 30.
        by_epoch (bool): Count ``warmup_epochs`` in epochs (True) or in
            iterations (False). Defaults to True.
    """
    priority = 'NORMAL'

    def __init__(self,
                 warmup_teacher_temp: float = 0.04,
                 teacher_temp: float = 0.04,
                 warmup_teacher_patch_temp: float = 0.04,
                 teacher_patch_temp: float = 0.07,
                 warmup_epochs: int = 30,
                 by_epoch: bool = True,
                 pred_start_epoch=None) -> None:
        if pred_start_epoch is not None:
            raise ValueError(
                'iBOTTeacherTempHook takes no pred_start_epoch: set '
                'model.mask_generator.pred_start_epoch (the hook reads it '
                f'there), got pred_start_epoch={pred_start_epoch!r}')
        temps = dict(
            warmup_teacher_temp=warmup_teacher_temp,
            teacher_temp=teacher_temp,
            warmup_teacher_patch_temp=warmup_teacher_patch_temp,
            teacher_patch_temp=teacher_patch_temp)
        for key, value in temps.items():
            if (not isinstance(value, numbers.Real)
                    or isinstance(value, bool) or not 0 < value < math.inf):
                raise ValueError(f'{key} must be a finite number > 0, got '
                                 f'{value!r}')
        self.warmup_teacher_temp = float(warmup_teacher_temp)
        self.teacher_temp = float(teacher_temp)
        self.warmup_teacher_patch_temp = float(warmup_teacher_patch_temp)
        self.teacher_patch_temp = float(teacher_patch_temp)
        self.warmup_epochs = _check_count(warmup_epochs, 'warmup_epochs')
        if not isinstance(by_epoch, bool):
            raise TypeError(f'by_epoch must be True or False, got '
                            f'{by_epoch!r}')
        self.by_epoch = by_epoch
        self._last: Optional[Tuple[float, float]] = None

    def temperatures(self, count: int,
                     pred_start_epoch: int = 0) -> Tuple[float, float]:
        """(CLS, patch) teacher temperatures at epoch (or iteration)
        ``count``, the patch warm-up starting after ``pred_start_epoch``."""
        cls_temp = teacher_temp_at(count, self.warmup_teacher_temp,
                                   self.teacher_temp, self.warmup_epochs)
        patch_temp = teacher_temp_at(count, self.warmup_teacher_patch_temp,
                                     self.teacher_patch_temp,
                                     self.warmup_epochs, pred_start_epoch)
        return cls_temp, patch_temp

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch:
            self._apply(runner, runner.epoch)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if not self.by_epoch:
            self._apply(runner, runner.iter)

    def _apply(self, runner, count: int) -> None:
        """Write the temperatures of ``count`` into the head and log them
        when they are new."""
        model = get_ori_model(runner.model)
        head = getattr(model, 'head', None)
        if head is None or not all(
                hasattr(head, key)
                for key in ('teacher_temp', 'teacher_patch_temp')):
            raise AttributeError(
                'iBOTTeacherTempHook needs model.head with the attributes '
                'teacher_temp and teacher_patch_temp (an iBOTHead), got '
                f'{type(head).__name__}')
        temps = self.temperatures(count, self.pred_start_epoch(model))
        head.teacher_temp, head.teacher_patch_temp = temps
        if self._should_log(temps):
            unit = 'epoch' if self.by_epoch else 'iter'
            runner.logger.info(
                f'iBOTTeacherTempHook: {unit} {count}: teacher_temp '
                f'{temps[0]:.6g}, teacher_patch_temp {temps[1]:.6g}')
        self._last = temps

    def pred_start_epoch(self, model) -> int:
        """The epochs without masks of ``model.mask_generator``."""
        start = getattr(getattr(model, 'mask_generator', None),
                        'pred_start_epoch', 0)
        start = _check_count(start, 'mask_generator.pred_start_epoch')
        if start and not self.by_epoch:
            raise ValueError(
                'iBOTTeacherTempHook(by_epoch=False) counts iterations but '
                'model.mask_generator.pred_start_epoch counts epochs; got '
                f'pred_start_epoch={start}, allowed with by_epoch=False: 0')
        return start

    def _should_log(self, temps: Tuple[float, float]) -> bool:
        if self._last is None:
            return True
        if temps == self._last:
            return False
        # per iteration, every warm-up step changes the values: log only
        # the end of the warm-up
        return self.by_epoch or temps == (self.teacher_temp,
                                          self.teacher_patch_temp)
