"""``SBAMHook``: warm-up schedule, masking statistics and mask pictures.

It works on every model that composes a :class:`~mmsbam.SalienceMasker`,
wherever the masker sits (found with ``model.modules()``); the details are
in the class docstring and ``docs/hooks.md``.
"""
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook, LoggerHook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from torch import nn

from mmpretrain.registry import HOOKS

from ...masking import MaskingRecord, SalienceMasker, find_maskers
from .random_state_hook import get_random_state, set_random_state

__all__ = ['SBAMHook']

DATA_BATCH = Optional[Union[dict, tuple, list]]

#: Statistics interval when none is given and the runner has no LoggerHook.
DEFAULT_INTERVAL = 50


def _check_count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise ValueError(f'SBAMHook: {name} must be an int >= {minimum}, '
                         f'got {value!r}')
    return value


@HOOKS.register_module()
class SBAMHook(Hook):
    """Warm-up schedule, masking statistics and mask pictures for SBAM.

    Works on every :class:`~mmsbam.SalienceMasker` of the model (found with
    ``model.modules()``, so wherever it sits and however many there are);
    a model without one (e.g. stock ``MAEViT``) is refused when training
    starts. Before each iteration it sets every masker's ``sbam_enabled``
    from ``runner.epoch`` / ``runner.iter`` (random masking during the
    warm-up, so ``--resume`` continues in the right mode); after it, it
    writes ``sbam/ratio_mean|min|max``, ``sbam/salience_masked|visible`` and
    ``sbam/enabled`` of the batch that just trained to the message hub
    (``sbam/<masker module>/...`` when there are several maskers), and
    every ``vis_interval`` iterations hands a picture of the first masker's
    masks of that batch (image, salience, mask, and for MAE the
    reconstruction) to ``runner.visualizer`` as ``'sbam_masks'``. See
    ``docs/hooks.md``.

    Example:
        >>> custom_hooks = [
        ...     dict(type='SBAMHook', warmup_epochs=100, vis_interval=500)]

    Args:
        warmup_epochs (int): Epochs of random masking before SBAM; needs an
            epoch-based train loop. Defaults to 0.
        warmup_iters (int): Iterations of random masking before SBAM.
            Defaults to 0. At most one of the two may be > 0.
        interval (int, optional): Statistics interval in iterations (inner
            iterations of the epoch, plus its last one, like the
            ``LoggerHook``). None uses the ``LoggerHook``'s interval, or
            50 without one. Defaults to None.
        vis_interval (int): Draw a picture every this many iterations; 0
            turns pictures off. Defaults to 500.
        vis_images (int): Images per picture (at most the batch size).
            Defaults to 4.
    """

    priority = 'NORMAL'  # before LoggerHook ('BELOW_NORMAL') in each stage

    def __init__(self,
                 warmup_epochs: int = 0,
                 warmup_iters: int = 0,
                 interval: Optional[int] = None,
                 vis_interval: int = 500,
                 vis_images: int = 4) -> None:
        self.warmup_epochs = _check_count('warmup_epochs', warmup_epochs)
        self.warmup_iters = _check_count('warmup_iters', warmup_iters)
        if warmup_epochs > 0 and warmup_iters > 0:
            raise ValueError(
                'SBAMHook: give warmup_epochs or warmup_iters, not both '
                f'(got warmup_epochs={warmup_epochs}, '
                f'warmup_iters={warmup_iters})')
        if interval is not None:
            _check_count('interval', interval, minimum=1)
        self.interval = interval
        self.vis_interval = _check_count('vis_interval', vis_interval)
        self.vis_images = _check_count('vis_images', vis_images, minimum=1)
        self._interval = interval or DEFAULT_INTERVAL
        self._enabled: Optional[bool] = None  # mode of the last iteration
        self._warned_no_record = False
        self._found: Optional[tuple] = None  # (model, its maskers)

    # ------------------------------------------------------------------
    # model access
    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def maskers(self, runner) -> Dict[str, SalienceMasker]:
        """Every ``SalienceMasker`` of the model by module name, or a clear
        error if there is none (searched once per model, not per iter).
        Maskers of modules that never remask (``replaces_masks()`` False,
        e.g. CAE's momentum teacher built from the SBAM backbone config) are
        left out."""
        model = self._model(runner)
        if self._found is not None and self._found[0] is model:
            return self._found[1]
        found = find_maskers(model)
        if not found:
            backbone = getattr(model, 'backbone', None)
            what = type(model).__name__ + (
                f' with backbone {type(backbone).__name__}'
                if backbone is not None else '')
            raise TypeError(
                f'SBAMHook found no SalienceMasker in the model ({what}): '
                'it needs an SBAM module, e.g. '
                "model.backbone.type='SBAMViT' with "
                "custom_imports=dict(imports=['mmsbam'])")
        self._found = (model, found)
        return found

    # ------------------------------------------------------------------
    # schedule
    def sbam_enabled_at(self, epoch: int, iteration: int) -> bool:
        """Whether the iteration at 0-based ``epoch`` / ``iteration`` uses
        SBAM (True) or random masking (False)."""
        if self.warmup_epochs > 0:
            return epoch >= self.warmup_epochs
        return iteration >= self.warmup_iters

    def _warmup_str(self) -> str:
        if self.warmup_epochs > 0:
            return f'warm-up of {self.warmup_epochs} epoch(s)'
        if self.warmup_iters > 0:
            return f'warm-up of {self.warmup_iters} iteration(s)'
        return 'no warm-up'

    @staticmethod
    def _mode(enabled: bool) -> str:
        return 'SBAM' if enabled else 'random masking'

    def _set_mode(self, runner) -> bool:
        enabled = self.sbam_enabled_at(runner.epoch, runner.iter)
        for masker in self.maskers(runner).values():
            masker.sbam_enabled = enabled
        return enabled

    def before_train(self, runner) -> None:
        """Check the model, pick the interval, set and log the mode."""
        maskers = self.maskers(runner)
        if self.warmup_epochs > 0 and isinstance(runner.train_loop,
                                                 IterBasedTrainLoop):
            raise ValueError(
                'SBAMHook: warmup_epochs needs an epoch-based train loop '
                '(runner.epoch does not advance in IterBasedTrainLoop); use '
                'warmup_iters')
        if self.interval is None:
            loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
            self._interval = (loggers[0].interval
                              if loggers else DEFAULT_INTERVAL)
        self._enabled = enabled = self._set_mode(runner)
        if self.warmup_epochs > 0:
            switch = (f'switch to SBAM at the start of epoch '
                      f'{self.warmup_epochs + 1}')
        elif self.warmup_iters > 0:
            switch = f'switch to SBAM at iter {self.warmup_iters + 1}'
        else:
            switch = 'SBAM throughout'
        verb = 'resumes' if runner.iter > 0 else 'starts'
        pictures = (f'mask pictures every {self.vis_interval} iters'
                    if self.vis_interval else 'no mask pictures')
        runner.logger.info(
            f'SBAMHook: training {verb} at epoch {runner.epoch + 1}, iter '
            f'{runner.iter + 1} with {self._mode(enabled)} '
            f'({self._warmup_str()}, {switch}); maskers: '
            f'{", ".join(maskers)}; masking statistics every '
            f'{self._interval} iters, {pictures}')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Set every masker's mode for this iteration."""
        enabled = self._set_mode(runner)
        if self._enabled is not None and enabled != self._enabled:
            runner.logger.info(
                f'SBAMHook: epoch {runner.epoch + 1}: '
                f'{self._mode(self._enabled)} -> {self._mode(enabled)} '
                f'({self._warmup_str()} done; iter {runner.iter + 1})')
        self._enabled = enabled

    # ------------------------------------------------------------------
    # statistics and pictures
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Log masking statistics, then draw a picture when due."""
        if self.every_n_inner_iters(batch_idx, self._interval) or \
                self.end_of_epoch(runner.train_dataloader, batch_idx):
            self._log_statistics(runner)
        if self.vis_interval and data_batch is not None and \
                self.every_n_train_iters(runner, self.vis_interval) and \
                is_main_process():
            self.draw(runner, data_batch)

    def _log_statistics(self, runner) -> None:
        maskers = self.maskers(runner)
        for name, masker in maskers.items():
            record = masker.last_masking
            if record is None:
                if not self._warned_no_record:
                    self._warned_no_record = True
                    runner.logger.warning(
                        f'SBAMHook: the masker {name} recorded no masking '
                        'in this iteration; no statistics')
                continue
            stats = record.statistics()
            stats['enabled'] = float(record.sbam_enabled)
            prefix = 'train/sbam/' + (f'{name}/' if len(maskers) > 1 else '')
            for key, value in stats.items():
                runner.message_hub.update_scalar(prefix + key, value)

    @torch.no_grad()
    def draw(self, runner, data_batch: Union[dict, tuple, list]
             ) -> Optional[np.ndarray]:
        """Draw the masks the first masker made for ``data_batch`` in the
        iteration that just trained, and add the picture to the runner's
        visualizer as ``'sbam_masks'``. Random states and train/eval modes
        are restored, so drawing never changes training.

        Returns:
            np.ndarray: The picture, (H, W, 3) uint8 RGB; None if the
            masker has no record yet.
        """
        model = self._model(runner)
        name, masker = next(iter(self.maskers(runner).items()))
        record = masker.last_masking
        if record is None:
            return None
        with _preserved(model):
            image = self._draw(runner, model, name, record, data_batch)
        runner.visualizer.add_image('sbam_masks', image, step=runner.iter + 1)
        return image

    def _draw(self, runner, model: nn.Module, name: str,
              record: MaskingRecord, data_batch) -> np.ndarray:
        from ...analysis.reconstruction import mae_reconstruction
        from ...visualization import denormalize, draw_masking_figure
        preprocessor = model.data_preprocessor
        inputs = preprocessor(data_batch, training=False)['inputs']
        if isinstance(inputs, (list, tuple)):  # multi-view: first view
            inputs = inputs[0]
        n = min(self.vis_images, len(inputs), len(record.mask))
        x = inputs[:n]
        mean, std = _normalization(preprocessor, x.shape[1])
        model.eval()
        reconstructions = mae_reconstruction(model, x,
                                             record.masking.first(n))
        if reconstructions is not None:
            reconstructions = denormalize(reconstructions, mean, std)
        mode = self._mode(record.sbam_enabled)
        column = 'SBAM mask' if record.sbam_enabled else 'random mask'
        owner = model.get_submodule(name.rpartition('.')[0])
        return draw_masking_figure(
            denormalize(x, mean, std),
            record.salience[:n],
            OrderedDict([(column, record.mask[:n])]),
            reconstructions=reconstructions,
            ratios={column: record.ratio[:n]},
            title=(f'{type(owner).__name__}: {mode}, epoch '
                   f'{runner.epoch + 1}, iter {runner.iter + 1}'),
            reconstruction_title='reconstruction + visible')


def _normalization(preprocessor: nn.Module,
                   channels: int) -> Tuple[List[float], List[float]]:
    """The data preprocessor's mean and std (identity without them)."""
    if getattr(preprocessor, '_enable_normalize', False):
        return (preprocessor.mean.flatten().tolist(),
                preprocessor.std.flatten().tolist())
    return [0.0] * channels, [1.0] * channels


@contextmanager
def _preserved(model: nn.Module) -> Iterator[None]:
    """Restore random states (torch CPU and CUDA, numpy, Python) and module
    train/eval modes on exit."""
    random_state = get_random_state()
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        set_random_state(random_state)
        for module, training in modes:
            module.training = training
