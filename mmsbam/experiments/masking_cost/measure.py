"""Timing and peak memory of train steps, and the benchmark's rounds.

After the warm-up rounds every round steps all variants on the same batch,
the starting variant rotating, so drift (thermal, clock, other load) hits
every variant alike; then the cost of the masking alone is timed on the
round's batch, outside the train steps.
"""
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .variants import AMR_VARIANTS, VARIANTS, Trainer

__all__ = [
    'PeakMemory', 'synchronize', 'timed', 'Measurements', 'run_rounds'
]

Peak = Tuple[Optional[int], Optional[int]]


def _proc_status_kib(field_name: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status``, None where there is none."""
    try:
        with open('/proc/self/status') as f:
            match = re.search(rf'^{field_name}:\s+(\d+)\s+kB', f.read(),
                              re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class PeakMemory:
    """Peak memory of one step: the CUDA allocator's, or on Linux the peak
    RSS of the process (``VmHWM``, reset through ``/proc/self/clear_refs``;
    approximate, the C allocator may keep freed memory resident).

    Args:
        device (torch.device): The device the steps run on.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = 'n/a'
        self.before = 0
        if device.type == 'cuda':
            self.kind = 'cuda max_memory_allocated'
        elif self._reset_rss_peak() and _proc_status_kib('VmHWM'):
            self.kind = 'process peak RSS (VmHWM), approx.'

    @staticmethod
    def _reset_rss_peak() -> bool:
        try:
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # resets VmHWM to the current RSS
            return True
        except OSError:
            return False

    def start(self) -> None:
        """Reset the peak and note what is resident before the step."""
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
        elif self.kind != 'n/a':
            self._reset_rss_peak()
            self.before = (_proc_status_kib('VmRSS') or 0) * 1024

    def stop(self) -> Peak:
        """(absolute peak, peak above the start) in bytes, or Nones."""
        if self.device.type == 'cuda':
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.kind != 'n/a':
            peak = (_proc_status_kib('VmHWM') or 0) * 1024
        else:
            return None, None
        return peak, peak - self.before


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of ``fn()``, synchronized before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


@dataclass
class Measurements:
    """What the timed rounds measured, per variant or op, in round order.

    Attributes:
        times (dict): Step seconds per variant.
        peaks (dict): (absolute, above resident) peak bytes per variant.
        cost_alone (dict): Seconds per op of the masking alone.
        amr_records (dict): Per AMR variant, ``(num_visible, ratio)`` (both
            (B,)) of each train step's masking, read from
            ``backbone.masker.last_masking`` right after the step.
    """
    times: Dict[str, List[float]] = field(default_factory=dict)
    peaks: Dict[str, List[Peak]] = field(default_factory=dict)
    cost_alone: Dict[str, List[float]] = field(default_factory=dict)
    amr_records: Dict[str, List[Tuple[Tensor, Tensor]]] = field(
        default_factory=dict)


def _train_round(trainers: Dict[str, Trainer], inputs: Tensor,
                 order: Sequence[str], memory: PeakMemory,
                 out: Optional[Measurements]) -> None:
    """One train step of every variant in ``order``, into ``out``."""
    for name in order:
        memory.start()
        t = timed(lambda: trainers[name].step(inputs), memory.device)
        peak = memory.stop()
        if out is None:
            continue
        out.times[name].append(t)
        out.peaks[name].append(peak)
        if name in out.amr_records:
            # no host sync: the tensors are read after the timed rounds
            record = trainers[name].model.backbone.masker.last_masking
            out.amr_records[name].append(
                (record.masking.num_visible, record.ratio))


def _cost_alone_round(ops: Dict[str, Callable[[Tensor], Any]],
                      trainer: Trainer, inputs: Tensor,
                      out: Optional[Measurements]) -> None:
    """Time each op on the patch tokens of ``inputs`` (under the autocast
    of ``trainer``, whose backbone makes the tokens), into ``out``."""
    with torch.no_grad(), trainer.autocast():
        tokens = trainer.model.backbone.patch_tokens(inputs)
        for op_name, op in ops.items():
            t = timed(lambda: op(tokens), trainer.device)
            if out is not None:
                out.cost_alone[op_name].append(t)


def run_rounds(trainers: Dict[str, Trainer],
               ops: Dict[str, Callable[[Tensor], Any]],
               make_inputs: Callable[[], Tensor], warmup: int, iters: int,
               memory: PeakMemory) -> Measurements:
    """Run ``warmup`` untimed and ``iters`` timed rounds, printing one
    progress line per round.

    Args:
        trainers (dict): ``{variant: Trainer}`` of every variant in
            :data:`VARIANTS`; the ops' tokens come from SBM's backbone.
        ops (dict): From :func:`cost_alone_ops`.
        make_inputs (Callable): Returns the next batch, on the device.
        warmup (int): Untimed rounds first.
        iters (int): Timed rounds.
        memory (PeakMemory): Peak memory of the steps' device.

    Returns:
        Measurements: Of the timed rounds.
    """
    out = Measurements(
        times={n: [] for n in VARIANTS}, peaks={n: [] for n in VARIANTS},
        cost_alone={n: [] for n in ops},
        amr_records={n: [] for n in AMR_VARIANTS})
    rounds = warmup + iters
    for r in range(rounds):
        measured = out if r >= warmup else None
        inputs = make_inputs()
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        _train_round(trainers, inputs, order, memory, measured)
        _cost_alone_round(ops, trainers['SBM'], inputs, measured)
        print(
            f'  round {r + 1}/{rounds}' +
            ('' if measured else ' (warm-up)') + ': ' +
            ', '.join(f'{n} {out.times[n][-1]:.3f}s' if measured else n
                      for n in VARIANTS),
            flush=True)
    return out
