"""Measures shared by the iBoT and SimMIM studies on Fashion-MNIST: the
frozen k-NN of a checkpoint under the key their pages use (``knn``), the
garment threshold of their mask-content measures, and the table format
of their pages (mean ± half-range over seeds, per arm)."""
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from ..tables import fmt

__all__ = ['GARMENT_THRESHOLD', 'CheckpointKNN', 'per_arm', 'fmt_cell',
           'num', 'repo_path']

#: Raw intensity (0..255) above which a patch counts as garment.
GARMENT_THRESHOLD = 40.0

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def repo_path(path: str) -> str:
    """``path`` as given if it exists (the tools run from the repository
    root), else relative to the repository root (tests, other cwd)."""
    return path if osp.exists(path) else osp.join(_ROOT, path)


@dataclass(frozen=True)
class CheckpointKNN:
    """Weighted k-NN top-1 (%) of a frozen checkpoint, all training images
    against all test images, stored as ``key``: the measure both pages
    report. Subclasses choose the checkpoint (iBoT: the teacher).

    Attributes:
        feature (str): ``'cls'`` (class token) or ``'avg'`` (mean token or
            pooled feature map, e.g. a Swin's last stage).
        k (int): Neighbours. temperature (float): Vote temperature.
        key (str): Name of the result.
    """
    feature: str = 'avg'
    k: int = 20
    temperature: float = 0.07
    key: str = 'knn'
    name: str = 'knn'

    def checkpoint(self, run: Any) -> str:
        """The checkpoint measured: the last pre-training epoch's."""
        return run.checkpoint()

    def __call__(self, run: Any) -> Dict[str, Any]:
        from ..evaluators import FrozenFeatures
        frozen = FrozenFeatures(feature=self.feature, k=self.k,
                                temperature=self.temperature,
                                train_images=0, test_images=0,
                                linear_epochs=0)
        out = frozen.measure(run.config, self.checkpoint(run),
                             run.cell.seed)
        return {self.key: out['knn_top1']}


def per_arm(runs: Sequence[Dict[str, Any]], keys: Sequence[str],
            group: Any = lambda r: r['arm']) -> Dict[Any, Dict[str, Any]]:
    """Mean ± half-range over seeds of ``keys``, per ``group(run)`` in the
    order the groups first appear (keys a group lacks are left out)."""
    from ..aggregate import mean_spread
    out: Dict[Any, Dict[str, Any]] = {}
    for run in runs:
        out.setdefault(group(run), {})
    for g in out:
        members = [r for r in runs if group(r) == g]
        out[g] = {k: mean_spread([r[k] for r in members]) for k in keys
                  if all(r.get(k) is not None for r in members)}
    return out


def num(x: float, digits: int, half_up: bool = True) -> str:
    """``x`` with ``digits`` decimals. ``half_up``: decimal halves rounded
    up, as the SimMIM page was written by hand (64.895 -> 64.90, though
    its float is 64.89499...); else Python's rounding of the float, as the
    iBoT page was."""
    if not half_up:
        return f'{x:.{digits}f}'
    from decimal import ROUND_HALF_UP, Decimal
    return str(Decimal(repr(round(float(x), 9))).quantize(
        Decimal(1).scaleb(-digits), ROUND_HALF_UP))


def fmt_cell(cell: Optional[Dict[str, Any]], digits: int,
             drop_zero_spread: bool = False, half_up: bool = True) -> str:
    """:func:`~..tables.fmt` with :func:`num`."""
    return fmt(cell, digits, lambda x, d: num(x, d, half_up),
               drop_zero_spread)
