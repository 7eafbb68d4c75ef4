"""The typed description of an experiment: arms x ratios x seeds, the
pre-training schedule, and how each cell is evaluated.

A study (``mmsbam/experiments/studies/``) builds one
:class:`ExperimentSpec`; ``tools/benchmarks/experiment.py`` builds it at
the command line's edge and hands it to :func:`~.runner.run_experiment`.
Nothing downstream sees the command line.
"""
import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ['Arm', 'Cell', 'ExperimentSpec', 'amr_ratio_var', 'cell_name']


def amr_ratio_var(ratio: float, cap: float = 0.1) -> float:
    """Largest half-range <= ``cap`` that keeps ratio ± it inside (0, 1)."""
    return round(min(cap, (1.0 - ratio) / 2, ratio / 2), 6)


@dataclass(frozen=True)
class Arm:
    """One way of pre-training, compared against the others.

    Attributes:
        name (str): Short id, part of each run's folder name.
        label (str): Its name in tables and plots.
        config (str): Pre-training config (``tools/train.py``).
        options (tuple[str]): ``--cfg-options`` ``KEY=VALUE`` strings; each
            is formatted with the cell's fields (``{ratio}``,
            ``{ratio_var}``, ``{seed}``, ``{epochs}``, ``{warmup_epochs}``,
            ``{images}``), so a ratio or a warm-up follows the cell.
        lr_zero (bool): Train with the learning rate at 0 (the loss a real
            run must end below); such arms are pre-trained, not evaluated.
    """
    name: str
    label: str
    config: str
    options: Tuple[str, ...] = ()
    lr_zero: bool = False


@dataclass(frozen=True)
class Cell:
    """One run: an arm at a masking ratio (None: the config's) and seed."""
    arm: Arm
    ratio: Optional[float]
    seed: int

    @property
    def name(self) -> str:
        return cell_name(self.arm.name, self.ratio, self.seed)


def cell_name(arm: str, ratio: Optional[float], seed: int) -> str:
    """Folder name of a run: ``sbam_r0.75_s0``, or ``ibot_s0`` without a
    ratio axis."""
    return arm + ('' if ratio is None else f'_r{ratio:.2f}') + f'_s{seed}'


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that defines an experiment's runs and report.

    Attributes:
        name (str): Study name (``tools/benchmarks/experiment.py NAME``).
        title (str): Heading of its report.
        arms (tuple[Arm]): The arms.
        seeds (tuple[int]): Seeds of every arm and ratio.
        epochs (int): Pre-training epochs.
        ratios (tuple): Masking ratios; ``(None,)`` keeps the configs'.
        images (int): Training images per epoch (``indices``); 0 keeps
            the config's.
        warmup_fraction (float): Random-masking warm-up as a fraction of
            ``epochs`` (``{warmup_epochs}`` in arm options, rounded).
        amr_cap (float): Cap of AMR's ``ratio_var`` (``{ratio_var}``).
        evaluators (tuple): Evaluators run on each finished cell
            (:mod:`.evaluators`), in order.
        baselines (tuple): Evaluators of the experiment as a whole (raw
            pixels, initial weights), run once.
        fit_schedule (bool): Fit the configs' LR schedule to ``epochs``
            (:func:`~.schedule.schedule_options`); off when an arm's
            options set it.
        extra_options (tuple[str]): ``--cfg-options`` added to every
            pre-training (after the arm's).
        work_dir (str): Root of the runs (one folder per cell).
        results (str): JSON with every cell's result and the summary.
        page (str): Markdown report ('' for none).
        jobs (int): Cells pre-trained at once (threads split among them).
    """
    name: str
    title: str
    arms: Tuple[Arm, ...]
    seeds: Tuple[int, ...]
    epochs: int
    ratios: Tuple[Optional[float], ...] = (None, )
    images: int = 0
    warmup_fraction: float = 0.0
    amr_cap: float = 0.1
    evaluators: Tuple[Any, ...] = ()
    baselines: Tuple[Any, ...] = ()
    fit_schedule: bool = True
    extra_options: Tuple[str, ...] = ()
    work_dir: str = 'work_dirs/experiment'
    results: str = ''
    page: str = ''
    jobs: int = 1
    notes: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self)

    def cells(self) -> List[Cell]:
        """Every run, seed-major (a first full comparison comes early),
        then ratio, then arm."""
        return [Cell(a, r, s) for s in self.seeds for r in self.ratios
                for a in self.arms]

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f'no arm {name!r}; arms: '
                       f'{[a.name for a in self.arms]}')

    def with_(self, **changes: Any) -> 'ExperimentSpec':
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    def fields(self, cell: Cell) -> Dict[str, Any]:
        """The values an arm's options are formatted with."""
        ratio = cell.ratio
        return dict(ratio=ratio, seed=cell.seed, epochs=self.epochs,
                    images=self.images,
                    warmup_epochs=int(round(self.epochs
                                            * self.warmup_fraction)),
                    ratio_var=(None if ratio is None else
                               amr_ratio_var(ratio, self.amr_cap)))


def _check(spec: ExperimentSpec) -> None:
    """Raise ``ValueError`` naming the bad field and its allowed range."""
    def bad(key: str, allowed: str, value: Any) -> None:
        raise ValueError(f'ExperimentSpec {spec.name!r}: {key} must be '
                         f'{allowed}, got {value!r}')

    if not spec.arms:
        bad('arms', 'a non-empty tuple of Arm', spec.arms)
    names = [a.name for a in spec.arms]
    if len(set(names)) != len(names):
        bad('arms', 'arms with distinct names', names)
    for a in spec.arms:
        if not isinstance(a, Arm):
            bad('arms', 'Arm instances', a)
    if not spec.seeds or not all(isinstance(s, int) and not isinstance(
            s, bool) and s >= 0 for s in spec.seeds):
        bad('seeds', 'a non-empty tuple of ints >= 0', spec.seeds)
    if len(set(spec.seeds)) != len(spec.seeds):
        bad('seeds', 'distinct', spec.seeds)
    if isinstance(spec.epochs, bool) or not isinstance(
            spec.epochs, int) or spec.epochs < 1:
        bad('epochs', 'an int >= 1', spec.epochs)
    if not spec.ratios:
        bad('ratios', 'a non-empty tuple (None: the configs\' ratio)',
            spec.ratios)
    for r in spec.ratios:
        if r is not None and not (isinstance(r, (int, float))
                                  and math.isfinite(r) and 0 < r < 1):
            bad('ratios', 'numbers in (0, 1) or None', spec.ratios)
    if isinstance(spec.images, bool) or not isinstance(
            spec.images, int) or spec.images < 0:
        bad('images', 'an int >= 0 (0: the config\'s)', spec.images)
    if not (isinstance(spec.warmup_fraction, (int, float))
            and 0 <= spec.warmup_fraction < 1):
        bad('warmup_fraction', 'in [0, 1)', spec.warmup_fraction)
    if not (isinstance(spec.amr_cap, (int, float))
            and 0 < spec.amr_cap < 0.5):
        bad('amr_cap', 'in (0, 0.5)', spec.amr_cap)
    if isinstance(spec.jobs, bool) or not isinstance(
            spec.jobs, int) or spec.jobs < 1:
        bad('jobs', 'an int >= 1', spec.jobs)
    evals = [e.name for e in spec.evaluators]
    if len(set(evals)) != len(evals):
        bad('evaluators', 'evaluators with distinct names', evals)


def parse_ratios(values: Sequence[str]) -> Tuple[Optional[float], ...]:
    """Ratios from the command line (``none`` for the configs')."""
    return tuple(None if v.lower() == 'none' else float(v) for v in values)
