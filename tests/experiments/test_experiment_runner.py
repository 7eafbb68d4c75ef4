"""The runner's bookkeeping (``mmsbam/experiments/runner.py``) with the
training subprocess and the clock replaced: a cell keeps its
pre-training time when another process pre-trained it or when it was
interrupted and resumed, and an
evaluator added to the spec later runs on finished cells."""
import os
import os.path as osp
from dataclasses import dataclass

import pytest

from mmsbam.experiments import runner
from mmsbam.experiments.runner import (CellRun, pretrain, pretrain_seconds,
                                       run_cell)
from mmsbam.experiments.studies import protocol


def _spec(tmp_path):
    return protocol.build(seeds=(0, ), ratios=(0.75, ), epochs=2,
                          evaluators=(), baselines=(),
                          work_dir=str(tmp_path / 'runs'),
                          results=str(tmp_path / 'r.json'),
                          page=str(tmp_path / 'page.md'))


def _fake_training(seconds, calls):
    """``run_logged`` that 'trains' for ``seconds`` and leaves the last
    checkpoint."""

    def run_logged(cmd, log_path, threads=None):
        calls.append(cmd)
        work_dir = cmd[cmd.index('--work-dir') + 1]
        os.makedirs(work_dir, exist_ok=True)
        with open(osp.join(work_dir, 'epoch_2.pth'), 'w') as f:
            f.write('x')
        return 'trained', seconds

    return run_logged


def test_pretrain_time_survives_another_process_and_resumes(
        tmp_path, monkeypatch):
    spec = _spec(tmp_path)
    cell = spec.cells()[0]
    run = CellRun(spec, cell, osp.join(spec.work_dir, cell.name))
    calls = []
    clock = iter([0.0, 100.0, 200.0, 212.5])
    monkeypatch.setattr(runner.time, 'time', lambda: next(clock))

    def interrupted(cmd, log_path, threads=None):
        raise KeyboardInterrupt  # e.g. the session ended after 100 s

    monkeypatch.setattr(runner, 'run_logged', interrupted)
    with pytest.raises(KeyboardInterrupt):
        pretrain(run)
    assert pretrain_seconds(run) == 100.0  # the interrupted piece is kept
    monkeypatch.setattr(runner, 'run_logged', _fake_training(0, calls))
    assert pretrain(run) == 12.5  # this invocation (200 s -> 212.5 s)
    assert pretrain_seconds(run) == 112.5  # the whole pre-training
    monkeypatch.setattr(runner.time, 'time', lambda: 0.0)
    assert pretrain(run) is None and len(calls) == 1  # reused
    # run_cell (e.g. after _pretrain_parallel) records the whole time
    result = run_cell(spec, cell)
    assert len(calls) == 1
    assert result['time_s']['pretrain'] == 112.5


def test_unrecorded_pretrain_time_is_none(tmp_path):
    spec = _spec(tmp_path)
    cell = spec.cells()[0]
    run = CellRun(spec, cell, osp.join(spec.work_dir, cell.name))
    assert pretrain_seconds(run) is None


CALLS = []


@dataclass(frozen=True)
class _Counted:
    """An evaluator that records its calls and returns its name."""
    name: str

    def __call__(self, run):
        CALLS.append((run.cell.name, self.name))
        return {self.name: 1.0}


def test_an_evaluator_added_later_runs_on_finished_cells_only(
        tmp_path, monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(runner, 'run_logged', _fake_training(5.0, []))
    spec = _spec(tmp_path).with_(evaluators=(_Counted('a'), ))
    cell = spec.cells()[0]
    first = run_cell(spec, cell)
    assert first['a'] == 1.0 and CALLS == [(cell.name, 'a')]
    assert run_cell(spec, cell) == first and len(CALLS) == 1  # read back
    later = spec.with_(evaluators=(_Counted('a'), _Counted('b')))
    result = run_cell(later, cell)
    assert CALLS == [(cell.name, 'a'), (cell.name, 'b')]  # only 'b' ran
    assert result['a'] == 1.0 and result['b'] == 1.0
    assert result['time_s']['pretrain'] is not None  # kept
    assert result['time_s']['pretrain'] == first['time_s']['pretrain']
    assert run_cell(later, cell) == result and len(CALLS) == 2
