"""``SBAMHook``: warm-up schedule, masking statistics and mask pictures.

Add it to a config that uses an SBAM-capable backbone (``SBAMViT``)::

    custom_hooks = [dict(type='SBAMHook', warmup_epochs=100, vis_interval=500)]

It does three things during training:

* **Schedule.** Random masking (stock MAE) for ``warmup_epochs`` epochs or
  ``warmup_iters`` iterations, then SBAM, by setting the backbone's
  ``salience_enabled`` before every iteration from ``runner.epoch`` /
  ``runner.iter``. MMEngine restores both on ``--resume``, so a resumed run
  continues in the mode its position calls for.
* **Statistics.** Every ``interval`` iterations (by default the
  ``LoggerHook``'s) it writes the masking statistics of the current batch to
  the message hub as ``train/sbam/...``; the ``LoggerHook`` prints and stores
  them as ``sbam/ratio_mean`` etc. (text log, ``scalars.json``, any
  visualiser backend).
* **Pictures.** Every ``vis_interval`` iterations it draws, for a few images
  of the batch, the image, its salience, its mask and the model's
  reconstruction, and hands the picture to ``runner.visualizer.add_image``
  (``LocalVisBackend`` writes ``vis_data/vis_image/sbam_masks_<step>.png``).
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

from .random_state import get_random_state, set_random_state

__all__ = ['SBAMHook', 'masking_statistics']

DATA_BATCH = Optional[Union[dict, tuple, list]]

#: Statistics interval when none is given and the runner has no LoggerHook.
DEFAULT_INTERVAL = 50


def masking_statistics(salience: torch.Tensor,
                       mask: torch.Tensor) -> Dict[str, float]:
    """Masking statistics of one batch.

    Args:
        salience (torch.Tensor): (B, L) normalised salience ``ŝ``.
        mask (torch.Tensor): (B, L), 1 = masked, 0 = visible.

    Returns:
        dict: ``ratio_mean``, ``ratio_min``, ``ratio_max`` (per-image masked
        fraction ``mask.mean(1)``), ``salience_masked`` and
        ``salience_visible`` (mean ``ŝ`` over all masked / visible tokens of
        the batch; 0 when there are none).
    """
    s = salience.detach().float()
    m = mask.detach().float()
    ratio = m.mean(1)
    masked = (s * m).sum() / m.sum().clamp(min=1)
    visible = (s * (1 - m)).sum() / (1 - m).sum().clamp(min=1)
    # one device -> host transfer for all values
    values = torch.stack(
        [ratio.mean(), ratio.min(), ratio.max(), masked, visible]).tolist()
    names = ('ratio_mean', 'ratio_min', 'ratio_max', 'salience_masked',
             'salience_visible')
    return dict(zip(names, values))


def _check_count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise ValueError(f'SBAMHook: {name} must be an int >= {minimum}, '
                         f'got {value!r}')
    return value


@HOOKS.register_module()
class SBAMHook(Hook):
    """Warm-up schedule, masking statistics and mask pictures for SBAM.

    The model's backbone must be SBAM-capable: it has a ``salience_enabled``
    switch (False = random masking at ``mask_ratio``, as stock MAE) and a
    ``last_masking`` record (``salience``, ``mask``, ``ratio`` of the last
    forward), as :class:`mmsbam.SBAMViT` does. Any other backbone (e.g.
    stock ``MAEViT``) is refused when training starts.

    Schedule: iterations before ``warmup_epochs`` epochs (or
    ``warmup_iters`` iterations) mask at random, the rest with SBAM. The
    mode is recomputed before every iteration from ``runner.epoch`` and
    ``runner.iter``, so a run resumed after the switch keeps SBAM and one
    resumed before it switches at the same point as an uninterrupted run.
    The switch and the mode at the start of training (also when resuming)
    are logged.

    Statistics (written to the message hub as ``train/sbam/<name>``; the
    ``LoggerHook`` logs them as ``sbam/<name>``), from the batch that just
    trained, on each rank (the log and the JSON show rank 0's):

    - ``sbam/ratio_mean``, ``sbam/ratio_min``, ``sbam/ratio_max``: actual
      masked fraction per image (``mask.mean(1)``).
    - ``sbam/salience_masked``, ``sbam/salience_visible``: mean ``ŝ`` of the
      masked and of the visible tokens of the batch.
    - ``sbam/enabled``: 1 if the iteration used SBAM, 0 if random masking.

    The ``LoggerHook`` prints the latest value of each, so with ``interval``
    equal to its own interval (the default) the printed values are those of
    the logged iteration.

    Pictures (main process only): every ``vis_interval`` iterations, for
    the first ``vis_images`` images of the batch: the de-normalised image,
    its salience heat map, the mask (labelled with the image's ratio and
    masked count) and, when the model has an MAE-style neck and head
    (``head.patchify``/``unpatchify``), the reconstruction (predicted
    masked patches, de-normalised per patch when ``head.norm_pix``, pasted
    into the visible ones). The images are masked again by a separate
    forward in eval mode under ``torch.no_grad``; the torch (CPU and CUDA),
    numpy and Python random states, the modules' train/eval modes and the
    backbone's ``last_masking`` are restored afterwards, so drawing never
    changes training. The picture goes to ``runner.visualizer.add_image(
    'sbam_masks', image, step=runner.iter + 1)`` (the step of the scalars
    logged for the same iteration).

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

    # ------------------------------------------------------------------
    # model access
    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def _backbone(self, runner) -> nn.Module:
        """The SBAM-capable backbone, or a clear error."""
        model = self._model(runner)
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise TypeError(
                f'SBAMHook needs a model with an SBAM-capable backbone '
                f'(e.g. SBAMViT); {type(model).__name__} has no backbone')
        if not (hasattr(backbone, 'salience_enabled')
                and hasattr(backbone, 'last_masking')):
            raise TypeError(
                f'SBAMHook does not support the backbone '
                f'{type(backbone).__name__}: it needs an SBAM-capable '
                f'backbone with a `salience_enabled` switch and a '
                f'`last_masking` record, i.e. SBAMViT (set '
                f"model.backbone.type='SBAMViT' and "
                f"custom_imports=dict(imports=['mmsbam'])).")
        return backbone

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

    def before_train(self, runner) -> None:
        """Check the model, pick the interval, set and log the mode."""
        backbone = self._backbone(runner)
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
        epoch, iteration = runner.epoch, runner.iter
        enabled = self.sbam_enabled_at(epoch, iteration)
        backbone.salience_enabled = enabled
        self._enabled = enabled
        if self.warmup_epochs > 0:
            switch = (f'switch to SBAM at the start of epoch '
                      f'{self.warmup_epochs + 1}')
        elif self.warmup_iters > 0:
            switch = f'switch to SBAM at iter {self.warmup_iters + 1}'
        else:
            switch = 'SBAM throughout'
        where = f'epoch {epoch + 1}, iter {iteration + 1}'
        verb = 'resumes' if iteration > 0 else 'starts'
        pictures = (f'mask pictures every {self.vis_interval} iters'
                    if self.vis_interval else 'no mask pictures')
        runner.logger.info(
            f'SBAMHook: training {verb} at {where} with '
            f'{self._mode(enabled)} ({self._warmup_str()}, {switch}); '
            f'masking statistics every {self._interval} iters, '
            f'{pictures}')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Set the backbone's masking mode for this iteration."""
        enabled = self.sbam_enabled_at(runner.epoch, runner.iter)
        backbone = self._backbone(runner)
        backbone.salience_enabled = enabled
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
        backbone = self._backbone(runner)
        if self.every_n_inner_iters(batch_idx, self._interval) or \
                self.end_of_epoch(runner.train_dataloader, batch_idx):
            self._log_statistics(runner, backbone)
        if self.vis_interval and data_batch is not None and \
                self.every_n_train_iters(runner, self.vis_interval) and \
                is_main_process():
            self.draw(runner, data_batch)

    def _log_statistics(self, runner, backbone: nn.Module) -> None:
        record = backbone.last_masking
        if record is None:
            if not self._warned_no_record:
                self._warned_no_record = True
                runner.logger.warning(
                    'SBAMHook: the backbone recorded no masking in this '
                    'iteration (last_masking is None); no statistics')
            return
        stats = masking_statistics(record['salience'], record['mask'])
        stats['enabled'] = float(bool(backbone.salience_enabled))
        hub = runner.message_hub
        for name, value in stats.items():
            hub.update_scalar(f'train/sbam/{name}', value)

    @torch.no_grad()
    def draw(self, runner, data_batch: Union[dict, tuple, list]) -> np.ndarray:
        """Draw the masking picture of ``data_batch`` and add it to the
        runner's visualizer as ``'sbam_masks'``.

        Training is left exactly as it was: random states, train/eval modes
        and ``last_masking`` are restored.

        Returns:
            np.ndarray: The picture, (H, W, 3) uint8 RGB.
        """
        model = self._model(runner)
        backbone = self._backbone(runner)
        with _preserved(model, backbone):
            image = self._draw(runner, model, backbone, data_batch)
        runner.visualizer.add_image('sbam_masks', image, step=runner.iter + 1)
        return image

    def _draw(self, runner, model: nn.Module, backbone: nn.Module,
              data_batch: Union[dict, tuple, list]) -> np.ndarray:
        from .visualization import denormalize, draw_masking_figure
        preprocessor = model.data_preprocessor
        inputs = preprocessor(data_batch, training=False)['inputs']
        if isinstance(inputs, (list, tuple)):  # multi-view: first view
            inputs = inputs[0]
        x = inputs[:self.vis_images]
        model.eval()
        outputs = backbone(x)
        record = backbone.last_masking
        mask, salience = record['mask'], record['salience']
        mean, std = _normalisation(preprocessor, x.shape[1])
        images = denormalize(x, mean, std)
        reconstructions = None
        neck, head = getattr(model, 'neck', None), getattr(model, 'head', None)
        if (neck is not None and hasattr(head, 'patchify')
                and hasattr(head, 'unpatchify')
                and isinstance(outputs, tuple) and len(outputs) == 3):
            latent, _, ids_restore = outputs
            pred = neck(latent, ids_restore).float()
            target = head.patchify(x.float())
            if getattr(head, 'norm_pix', False):
                # MAE's visualisation: back from per-patch normalised units
                mu = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                pred = pred * (var + 1.e-6)**.5 + mu
            m = mask.float().unsqueeze(-1)
            pasted = pred * m + target * (1 - m)
            reconstructions = denormalize(head.unpatchify(pasted), mean, std)
        name = 'SBAM mask' if backbone.salience_enabled else 'random mask'
        mode = self._mode(bool(backbone.salience_enabled))
        title = (f'{type(backbone).__name__}: {mode}, '
                 f'epoch {runner.epoch + 1}, iter {runner.iter + 1}')
        return draw_masking_figure(
            images,
            salience,
            OrderedDict([(name, mask)]),
            reconstructions=reconstructions,
            ratios={name: record['ratio']},
            title=title,
            reconstruction_title='reconstruction + visible')


def _normalisation(preprocessor: nn.Module,
                   channels: int) -> Tuple[List[float], List[float]]:
    """The data preprocessor's mean and std (identity without them)."""
    if getattr(preprocessor, '_enable_normalize', False):
        return (preprocessor.mean.flatten().tolist(),
                preprocessor.std.flatten().tolist())
    return [0.0] * channels, [1.0] * channels


@contextmanager
def _preserved(model: nn.Module, backbone: nn.Module) -> Iterator[None]:
    """Restore random states (torch CPU and CUDA, numpy, Python), module
    train/eval modes and the backbone's masking record on exit."""
    random_state = get_random_state()
    modes = [(m, m.training) for m in model.modules()]
    last_masking = backbone.last_masking
    salience_enabled = backbone.salience_enabled
    try:
        yield
    finally:
        set_random_state(random_state)
        for module, training in modes:
            module.training = training
        backbone.last_masking = last_masking
        backbone.salience_enabled = salience_enabled
