"""BootMAE's per-epoch schedules: the EMA decay of the bootstrapped target
encoder (official ``utils.adjust_ema_momentum``) and the ramp of the
feature-loss weight (``train_one_epoch``). Both are pure functions of the
0-based epoch, so a resumed run recomputes them from ``runner.epoch``.
"""
from typing import Sequence

__all__ = ['bootmae_ema_decay', 'bootmae_feature_weight',
           'check_ema_schedule']


def check_ema_schedule(decays: Sequence[float], epochs: Sequence[float],
                       ) -> None:
    """Refuse decays outside (0, 1) or not increasing, and ramp lengths
    that are not positive."""
    if len(decays) != 3 or not all(0 < d < 1 for d in decays) or not \
            decays[0] <= decays[1] <= decays[2]:
        raise ValueError('ema_decays must be three increasing decays in '
                         f'(0, 1) (start, middle, end), got {decays!r}')
    if len(epochs) != 2 or not all(e > 0 for e in epochs):
        raise ValueError('ema_epochs must be two positive epoch counts '
                         f'(first ramp, second ramp), got {epochs!r}')


def bootmae_ema_decay(epoch: int,
                      decays: Sequence[float] = (0.999, 0.9999, 0.99999),
                      epochs: Sequence[float] = (100, 300),
                      dynamic: bool = True) -> float:
    """EMA decay ``d`` of an epoch (``ema = d * ema + (1 - d) * student``).

    Linear from ``decays[0]`` to ``decays[1]`` over the first ``epochs[0]``
    epochs; then, with ``dynamic`` (``--model_ema_dynamic``, the ViT-B
    script), linear to ``decays[2]`` over ``epochs[1]`` more epochs and
    constant after; without it ``decays[1]`` (the ViT-L script).

    Args:
        epoch (int): 0-based epoch.
        decays (Sequence[float]): (start, middle, end). Defaults to the
            official (0.999, 0.9999, 0.99999).
        epochs (Sequence[float]): Lengths of the two ramps. Defaults to
            (100, 300).
        dynamic (bool): Use the second ramp. Defaults to True.

    Returns:
        float: d, e.g. 0.999, 0.99945, 0.9999, 0.999945, 0.99999 at epochs
        0, 50, 100, 250, 400 with the defaults.
    """
    start, middle, end = decays
    first, second = epochs
    if epoch < first:
        return start + epoch / first * (middle - start)
    if not dynamic:
        return middle
    return middle + min(second, epoch - first) / second * (end - middle)


def bootmae_feature_weight(epoch: int, weight: float = 1.0,
                           ramp_epochs: float = 801 / 4) -> float:
    """lambda_f of an epoch: ``min(weight * (1 + epoch) / ramp_epochs,
    weight)``. The official ramp is a quarter of ``--epochs`` (801 / 4),
    i.e. ``min(4 F (1 + e) / E, F)``: 0.005 at epoch 0, 1 from epoch 200.

    Args:
        epoch (int): 0-based epoch.
        weight (float): F, the final weight (``--feature_weight``).
        ramp_epochs (float): Epochs to reach F.

    Returns:
        float: lambda_f.
    """
    return min(weight * (1 + epoch) / ramp_epochs, weight)
