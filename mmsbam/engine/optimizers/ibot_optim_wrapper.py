"""Optimizer wrappers with iBoT's gradient handling.

The official iBoT step (``main_ibot.py``, ``train_one_epoch``) does, after
the backward pass: (under fp16) unscale the gradients, clip **each
parameter tensor's** gradient to an L2 norm of at most ``clip_grad``
(``utils.clip_gradients``; not a global-norm clip), cancel the gradients of
the prototype ("last") layer during the first ``freeze_last_layer`` epochs
(``utils.cancel_gradients_last_layer``: ``grad = None``, so AdamW neither
steps nor decays it), then step the optimizer (and update the loss scale).
MMEngine has no hook between ``backward`` and ``step``, and overriding
``train_step`` does not work under DDP, so both live in the optimizer
wrapper: :class:`iBOTOptimWrapper` (fp32) and :class:`AmpiBOTOptimWrapper`
(mixed precision), sharing :class:`iBOTGradientMixin`.

The last-layer parameters are found through their param groups, tagged by
MMEngine's ``DefaultOptimWrapperConstructor``, which copies the extra keys
of a ``custom_keys`` entry into the param group::

    optim_wrapper = dict(
        type='AmpiBOTOptimWrapper',
        optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.04),
        clip_grad=dict(type='per_param', max_norm=3.0),
        freeze_last_layer_epochs=1,
        paramwise_cfg=dict(
            custom_keys={'last_layer': dict(last_layer=True)}))

A ``custom_keys`` match replaces the other paramwise rules for that
parameter (MMEngine takes the longest matching key), so the tagged groups
keep the base weight decay, as iBoT's 2-D last-layer weights do.
"""
import copy
import logging
from typing import Iterator, List, Optional, Tuple

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmpretrain.registry import OPTIM_WRAPPERS

__all__ = [
    'iBOTGradientMixin', 'iBOTOptimWrapper', 'AmpiBOTOptimWrapper',
    'clip_grad_per_param_', 'LAST_LAYER_TAG'
]

LAST_LAYER_TAG = 'last_layer'
PER_PARAM = 'per_param'
EPS = 1e-6  # official utils.clip_gradients


def clip_grad_per_param_(params: List[torch.Tensor],
                         max_norm: float) -> Optional[torch.Tensor]:
    """Clip each tensor's gradient to L2 norm ``<= max_norm``, in place.

    Each gradient ``g`` is multiplied by ``max_norm / (||g|| + 1e-6)`` when
    that is below 1 and left bit-identical otherwise (iBoT's / DINO's
    ``utils.clip_gradients``), without a device synchronisation.

    Args:
        params (list[Tensor]): Parameters; those without a gradient are
            skipped.
        max_norm (float): Largest L2 norm of one tensor's gradient.

    Returns:
        Tensor, optional: The global L2 norm of the gradients before
        clipping (a 0-d tensor, as ``clip_grad_norm_`` returns), or None
        when no parameter has a gradient.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    norms = [torch.linalg.vector_norm(g.detach(), 2) for g in grads]
    for grad, norm in zip(grads, norms):
        coef = max_norm / (norm + EPS)
        # as the official `if clip_coef < 1`: a NaN norm leaves g as it is
        coef = torch.where(coef < 1, coef, torch.ones_like(coef))
        grad.detach().mul_(coef.to(grad.dtype))
    device = norms[0].device
    return torch.linalg.vector_norm(
        torch.stack([n.to(device, torch.float32) for n in norms]), 2)


def _split_clip_grad(clip_grad: Optional[dict]
                     ) -> Tuple[Optional[float], Optional[dict]]:
    """``(per-param max_norm or None, clip_grad for MMEngine)``."""
    if not isinstance(clip_grad, dict) or clip_grad.get('type') != PER_PARAM:
        return None, copy.deepcopy(clip_grad)
    extra = set(clip_grad) - {'type', 'max_norm'}
    if extra:
        raise ValueError(f"clip_grad of type '{PER_PARAM}' takes only "
                         f'max_norm, got the extra keys {sorted(extra)}')
    max_norm = clip_grad.get('max_norm')
    if (not isinstance(max_norm, (int, float)) or isinstance(max_norm, bool)
            or not max_norm > 0):
        raise ValueError(f"clip_grad of type '{PER_PARAM}' needs max_norm > "
                         f'0, got {max_norm!r}')
    return float(max_norm), None


def _check_count(value, key: str) -> int:
    if (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ValueError(f'{key} must be an integer >= 0, got {value!r}')
    return value


class iBOTGradientMixin:
    """What iBoT does between ``backward`` and the optimizer step.

    Mixed into an MMEngine optimizer wrapper (before it in the bases). The
    step becomes: unscale (mixed precision only, and only when clipping),
    clip, cancel the last layer's gradients while it is frozen, step.

    Args:
        clip_grad (dict, optional): ``dict(type='per_param', max_norm=3.0)``
            for iBoT's per-tensor clip; any other value is MMEngine's
            (global ``'norm'`` or ``'value'`` clip, or None: no clip).
        freeze_last_layer_epochs (int): The gradients of every parameter in
            a param group with ``last_layer=True`` are set to None while the
            epoch (``MessageHub`` info ``'epoch'``) is below this. Defaults
            to 1 (official ``freeze_last_layer``).
        freeze_last_layer_iters (int): The same while the iteration
            (``MessageHub`` info ``'iter'``) is below this, for iteration-
            based loops (whose epoch stays 0). Defaults to 0.
        **kwargs: The wrapped class's arguments (``optimizer``, ...).
    """

    def __init__(self,
                 *args,
                 clip_grad: Optional[dict] = None,
                 freeze_last_layer_epochs: int = 1,
                 freeze_last_layer_iters: int = 0,
                 **kwargs) -> None:
        # checked before the wrapped class, which may refuse the device
        self.per_param_max_norm, clip_grad = _split_clip_grad(clip_grad)
        freeze_last_layer_epochs = _check_count(
            freeze_last_layer_epochs, 'freeze_last_layer_epochs')
        freeze_last_layer_iters = _check_count(
            freeze_last_layer_iters, 'freeze_last_layer_iters')
        super().__init__(*args, clip_grad=clip_grad, **kwargs)
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self.freeze_last_layer_iters = freeze_last_layer_iters
        freezes = self.freeze_last_layer_epochs or self.freeze_last_layer_iters
        if freezes and not any(
                g.get(LAST_LAYER_TAG) for g in self.optimizer.param_groups):
            raise ValueError(
                'freeze_last_layer_epochs/_iters > 0 but no param group is '
                f'tagged {LAST_LAYER_TAG}=True: add paramwise_cfg=dict('
                "custom_keys={'last_layer': dict(last_layer=True)}) to the "
                'optim_wrapper config, or set both to 0')
        self._warned_whole_run = False

    def step(self, **kwargs) -> None:
        """Unscale, clip, cancel the frozen last layer, then step."""
        if self.per_param_max_norm is not None or self.clip_grad_kwargs:
            self._unscale_grads()
            self._clip_grad()
        if self.last_layer_frozen():
            for param in self._last_layer_params():
                param.grad = None
        self._optimizer_step(**kwargs)

    def _clip_grad(self) -> None:
        if self.per_param_max_norm is None:
            super()._clip_grad()
            return
        params = [
            p for group in self.optimizer.param_groups
            for p in group['params'] if p.requires_grad
        ]
        total = clip_grad_per_param_(params, self.per_param_max_norm)
        if total is not None:  # the pre-clip global norm, as MMEngine logs
            self.message_hub.update_scalar('train/grad_norm', float(total))

    def last_layer_frozen(self) -> bool:
        """Whether the last layer is frozen now (``MessageHub`` epoch and
        iteration against the freeze lengths)."""
        if not (self.freeze_last_layer_epochs or self.freeze_last_layer_iters):
            return False
        hub = MessageHub.get_current_instance()
        self._warn_if_frozen_for_whole_run(hub)
        return (hub.get_info('epoch', 0) < self.freeze_last_layer_epochs
                or hub.get_info('iter', 0) < self.freeze_last_layer_iters)

    def _last_layer_params(self) -> Iterator[torch.Tensor]:
        for group in self.optimizer.param_groups:
            if group.get(LAST_LAYER_TAG):
                yield from group['params']

    def _warn_if_frozen_for_whole_run(self, hub: MessageHub) -> None:
        max_epochs = hub.get_info('max_epochs')
        if (self._warned_whole_run or max_epochs is None
                or self.freeze_last_layer_epochs < max_epochs):
            return
        self._warned_whole_run = True
        print_log(
            f'freeze_last_layer_epochs={self.freeze_last_layer_epochs} >= '
            f'max_epochs={max_epochs}: the last layer never trains in this '
            'run (an IterBasedTrainLoop counts one epoch; use '
            'freeze_last_layer_iters there)',
            logger='current',
            level=logging.WARNING)

    def _unscale_grads(self) -> None:
        """Bring the gradients to their true scale before clipping."""

    def _optimizer_step(self, **kwargs) -> None:
        self.optimizer.step(**kwargs)


@OPTIM_WRAPPERS.register_module()
class iBOTOptimWrapper(iBOTGradientMixin, OptimWrapper):
    """``OptimWrapper`` with iBoT's per-parameter clip and last-layer
    freeze (see :class:`iBOTGradientMixin` for the arguments).

    Example:
        >>> optim_wrapper = dict(
        ...     type='iBOTOptimWrapper',
        ...     optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.04),
        ...     clip_grad=dict(type='per_param', max_norm=3.0),
        ...     freeze_last_layer_epochs=1,
        ...     paramwise_cfg=dict(
        ...         custom_keys={'last_layer': dict(last_layer=True)}))
    """


@OPTIM_WRAPPERS.register_module()
class AmpiBOTOptimWrapper(iBOTGradientMixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` with iBoT's per-parameter clip and last-layer
    freeze: unscale -> clip -> cancel the last layer -> ``scaler.step`` ->
    ``scaler.update`` (see :class:`iBOTGradientMixin`; also takes
    ``AmpOptimWrapper``'s ``loss_scale`` and ``dtype``). Needs a GPU (or
    NPU/MLU/MUSA), as ``AmpOptimWrapper`` does.

    Example:
        >>> optim_wrapper = dict(
        ...     type='AmpiBOTOptimWrapper', loss_scale='dynamic',
        ...     optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.04),
        ...     clip_grad=dict(type='per_param', max_norm=3.0),
        ...     paramwise_cfg=dict(
        ...         custom_keys={'last_layer': dict(last_layer=True)}))
    """

    def _unscale_grads(self) -> None:
        self.loss_scaler.unscale_(self.optimizer)

    def _optimizer_step(self, **kwargs) -> None:
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update(self._scale_update_param)
