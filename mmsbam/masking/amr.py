"""Adaptive masking ratio (AMR, ``SBAM.md`` section 3).

``y_b = |{j : ŝ_bj > δ}| / L`` and ``r_b = r_base - r_var + 2 r_var y_b``:
images with more salient content are masked more. ``mode='sample'`` gives
each image its own ratio, as the paper states; ``mode='batch'`` takes one
ratio from the batch mean of ``y_b``, as the authors' code does: the batch
of this process, or with ``sync=True`` the global batch of all processes
(one all-reduce per step), so that every rank masks at the same ratio.
"""

import torch
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor

from mmpretrain.registry import MODELS

__all__ = ['adaptive_mask_ratio', 'AdaptiveMaskRatio', 'AMR_MODES']

AMR_MODES = ('sample', 'batch')

#: Defaults chosen from measured salience distributions, see docs/method.md
#: ("Choosing delta and ratio_var").
DEFAULT_DELTA = 0.2
DEFAULT_RATIO_VAR = 0.1


def salient_fraction(salience: Tensor, delta: float) -> Tensor:
    """``y_b``: fraction of tokens with ``ŝ > δ``, shape (B,)."""
    return (salience > delta).float().mean(dim=1)


def adaptive_mask_ratio(salience: Tensor, base_ratio: float,
                        ratio_var: float, delta: float) -> Tensor:
    """Per-image masking ratio from salience.

    Args:
        salience (Tensor): Normalised salience ``ŝ`` of shape (B, L).
        base_ratio (float): ``r_base``, in (0, 1).
        ratio_var (float): Half-range ``r_var`` >= 0; the ratio stays in
            ``[r_base - r_var, r_base + r_var]``.
        delta (float): Salience threshold ``δ`` in [0, 1].

    Returns:
        Tensor: (B,) float32 ratios.
    """
    check_amr_args(base_ratio, ratio_var, delta)
    y = salient_fraction(salience, delta)
    return base_ratio - ratio_var + 2 * ratio_var * y


def check_amr_args(base_ratio: float, ratio_var: float, delta: float,
                   mode: str = 'sample', base_name: str = 'base_ratio',
                   sync: bool = False) -> None:
    """Raise ``ValueError`` naming the first bad AMR argument.

    ``base_name`` is what the caller calls ``r_base`` (SBAMViT:
    ``mask_ratio``).
    """
    if not isinstance(base_ratio, (int, float)) or not 0 < base_ratio < 1:
        raise ValueError(f'{base_name} must be in (0, 1), got {base_ratio!r}')
    if not isinstance(ratio_var, (int, float)) or not ratio_var >= 0:
        raise ValueError(f'amr.ratio_var must be >= 0, got {ratio_var!r}')
    if not (0 < base_ratio - ratio_var and base_ratio + ratio_var < 1):
        raise ValueError(
            f'amr.ratio_var={ratio_var} pushes the masking ratio to '
            f'[{base_ratio - ratio_var:.4g}, {base_ratio + ratio_var:.4g}] '
            f'around {base_name}={base_ratio}; it must stay inside (0, 1), '
            f'so ratio_var must be < {min(base_ratio, 1 - base_ratio):.4g}')
    if not isinstance(delta, (int, float)) or not 0 <= delta <= 1:
        raise ValueError(f'amr.delta must be in [0, 1], got {delta!r}')
    if mode not in AMR_MODES:
        raise ValueError(f'amr.mode must be one of {AMR_MODES}, got {mode!r}')
    if not isinstance(sync, bool):
        raise ValueError(f'amr.sync must be True or False, got {sync!r}')
    if sync and mode != 'batch':
        raise ValueError(
            f"amr.sync=True needs mode='batch' (one ratio for the global "
            f"batch); mode={mode!r} gives each image its own ratio, which "
            'needs no synchronisation')


def global_mean(values: Tensor) -> Tensor:
    """Mean of ``values`` (B,) over the batches of all processes, the same
    on every rank: one all-reduce of their sum and count, in float64 (the
    per-process batches may differ in size). Every process must call it,
    as every rank masks once per step. Returns a float64 scalar."""
    stats = torch.stack([values.sum(), values.new_tensor(len(values))])
    stats = stats.double()
    all_reduce(stats)  # sum over processes
    return stats[0] / stats[1]


@MODELS.register_module()
class AdaptiveMaskRatio:
    """Registered AMR: ``amr(salience) -> (B,) ratios``.

    Args:
        base_ratio (float): ``r_base`` in (0, 1), normally the backbone's
            ``mask_ratio``.
        ratio_var (float): Half-range of the ratio. Defaults to 0.1.
        delta (float): Salience threshold in [0, 1]. Defaults to 0.2.
        mode (str): ``'sample'`` (one ratio per image, padded encoder) or
            ``'batch'`` (one ratio from the batch mean). Defaults to
            ``'sample'``.
        sync (bool): With ``mode='batch'`` under distributed training,
            take the mean of ``y_b`` over the global batch (all processes,
            one all-reduce per step), so that every rank masks at the same
            ratio; False uses each process's own batch. One process: the
            same ratio either way. Defaults to False.
    """

    def __init__(self,
                 base_ratio: float,
                 ratio_var: float = DEFAULT_RATIO_VAR,
                 delta: float = DEFAULT_DELTA,
                 mode: str = 'sample',
                 sync: bool = False) -> None:
        check_amr_args(base_ratio, ratio_var, delta, mode, sync=sync)
        self.base_ratio = float(base_ratio)
        self.ratio_var = float(ratio_var)
        self.delta = float(delta)
        self.mode = mode
        self.sync = sync

    def __call__(self, salience: Tensor) -> Tensor:
        ratios = adaptive_mask_ratio(salience, self.base_ratio,
                                     self.ratio_var, self.delta)
        if self.mode != 'batch':
            return ratios
        if self.sync and get_world_size() > 1:
            y = global_mean(salient_fraction(salience, self.delta))
            ratio = self.base_ratio - self.ratio_var + 2 * self.ratio_var * y
            return ratio.to(ratios).expand_as(ratios)
        return ratios.mean().expand_as(ratios)

    def __repr__(self) -> str:
        sync = ', sync=True' if self.sync else ''
        return (f'{type(self).__name__}(base_ratio={self.base_ratio}, '
                f'ratio_var={self.ratio_var}, delta={self.delta}, '
                f"mode='{self.mode}'{sync})")
