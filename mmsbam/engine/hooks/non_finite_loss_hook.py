"""``NonFiniteLossHook``: stop at the first NaN/Inf loss, before a
checkpoint of the broken weights is written."""
import math

from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

__all__ = ['NonFiniteLossHook']


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
        if isinstance(patience, bool) or not isinstance(patience, int) or \
                patience < 1:
            raise ValueError('NonFiniteLossHook: patience must be an integer '
                             f'>= 1, got {patience!r}')
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
