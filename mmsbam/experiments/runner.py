"""Running an experiment: each cell pre-trained by ``tools/train.py`` (a
subprocess, resumed from its last checkpoint when it was interrupted), then
its evaluators; every step's result is a file, so a run killed at any
moment continues where it stopped and finished cells are skipped.

Files of a cell ``<work_dir>/<cell>/``: ``pretrain/`` (the Runner's work
dir), ``pretrain.log``, ``pretrain_seconds.json`` (the seconds of each
pre-training invocation, interrupted ones included; a killed process
loses only its own), ``eval/<evaluator>.json``
(one per evaluator, as it finishes) and ``result.json`` (the cell is done).
"""
import json
import os
import os.path as osp
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .spec import Cell, ExperimentSpec

__all__ = [
    'TRAIN_TOOL', 'CellRun', 'read_json', 'write_json', 'show', 'hms',
    'run_logged', 'pretrain_options', 'pretrain_command', 'pretrain',
    'pretrain_seconds', 'run_cell', 'run_baselines', 'run_experiment',
    'collect'
]

TRAIN_TOOL = 'tools/train.py'


def read_json(path: str) -> Optional[Any]:
    """The JSON in ``path``; None if it does not exist."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` atomically (a killed write leaves the old file)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def show(cmd: Sequence[str]) -> str:
    """A command as one shell-quoted line."""
    return ' '.join(shlex.quote(str(c)) for c in cmd)


def hms(seconds: float) -> str:
    """Seconds as ``1h02m03s``."""
    s = int(round(seconds))
    return f'{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s'


def run_logged(cmd: List[str], log_path: str,
               threads: Optional[int] = None) -> Tuple[str, float]:
    """Run ``cmd`` from the current directory, its output into
    ``log_path`` (``threads`` sets ``OMP/MKL_NUM_THREADS``).

    Returns:
        tuple[str, float]: The output and the seconds it took.

    Raises:
        RuntimeError: ``cmd`` failed; with the end of its output.
    """
    os.makedirs(osp.dirname(osp.abspath(log_path)), exist_ok=True)
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    start = time.time()
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env)
    with open(log_path, 'w') as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f'failed ({proc.returncode}): {show(cmd)}\n'
                           f'{proc.stdout[-4000:]}\nlog: {log_path}')
    return proc.stdout, time.time() - start


@dataclass(frozen=True)
class CellRun:
    """What an evaluator gets: the spec, the cell and where its files
    are."""
    spec: ExperimentSpec
    cell: Cell
    run_dir: str

    @property
    def pretrain_dir(self) -> str:
        return osp.join(self.run_dir, 'pretrain')

    def checkpoint(self, epoch: Optional[int] = None) -> str:
        """The pre-training checkpoint of ``epoch`` (default: the last)."""
        return osp.join(self.pretrain_dir,
                        f'epoch_{epoch or self.spec.epochs}.pth')

    @property
    def config(self) -> str:
        return self.cell.arm.config

    @property
    def options(self) -> List[str]:
        return pretrain_options(self.spec, self.cell)


def pretrain_options(spec: ExperimentSpec, cell: Cell) -> List[str]:
    """``--cfg-options`` of a cell's pre-training: the fitted schedule,
    the arm's options formatted with the cell's fields, seed, subset,
    checkpoints (every epoch kept when an evaluator reads them all), and
    the spec's extra options."""
    from .schedule import load_cfg, schedule_options
    opts: List[str] = []
    if spec.fit_schedule:
        opts += schedule_options(load_cfg(cell.arm.config), spec.epochs)
    else:
        opts.append(f'train_cfg.max_epochs={spec.epochs}')
    values = spec.fields(cell)
    opts += [o.format(**values) for o in cell.arm.options]
    opts.append(f'randomness.seed={cell.seed}')
    if spec.images:
        opts.append(f'train_dataloader.dataset.indices={spec.images}')
    keep = -1 if any(getattr(e, 'every_epoch', False)
                     for e in spec.evaluators) else 1
    opts.append(f'default_hooks.checkpoint.max_keep_ckpts={keep}')
    if cell.arm.lr_zero:  # the cosine's absolute floor too
        opts += ['optim_wrapper.optimizer.lr=0.0']
        opts += [f'param_scheduler.{i}.eta_min=0.0'
                 for i in _cosine_indices(cell.arm.config)]
    return opts + list(spec.extra_options)


def _cosine_indices(config: str) -> List[int]:
    from .schedule import load_cfg
    scheds = load_cfg(config).get('param_scheduler') or []
    if isinstance(scheds, dict):
        scheds = [scheds]
    return [i for i, s in enumerate(scheds) if 'eta_min' in s
            or s.get('type') == 'CosineAnnealingLR']


def pretrain_command(run: CellRun) -> List[str]:
    """The ``tools/train.py`` command of a cell (``--resume`` when an
    interrupted run left a checkpoint)."""
    cmd = [sys.executable, TRAIN_TOOL, run.config, '--work-dir',
           run.pretrain_dir]
    if osp.isfile(osp.join(run.pretrain_dir, 'last_checkpoint')):
        cmd.append('--resume')
    return cmd + ['--cfg-options'] + run.options


def pretrain(run: CellRun, threads: Optional[int] = None
             ) -> Optional[float]:
    """Pre-train a cell unless its last checkpoint exists; the seconds it
    took (None: reused). Each invocation's seconds are appended to
    ``pretrain_seconds.json``, so that a cell pre-trained by another
    process, or in several resumed pieces, keeps its time."""
    if osp.isfile(run.checkpoint()):
        return None
    cmd = pretrain_command(run)
    print(f'[{run.cell.name}] pre-training: {show(cmd)}', flush=True)
    start = time.time()
    try:
        run_logged(cmd, osp.join(run.run_dir, 'pretrain.log'), threads)
    finally:  # an interrupted or failed invocation keeps its time too
        seconds = round(time.time() - start, 1)
        path = osp.join(run.run_dir, 'pretrain_seconds.json')
        write_json(path, (read_json(path) or []) + [seconds])
    print(f'[{run.cell.name}] pre-trained in {seconds:.0f} s', flush=True)
    return seconds


def pretrain_seconds(run: CellRun) -> Optional[float]:
    """The seconds of a cell's pre-training, summed over its invocations;
    None when none was recorded (pre-trained before the record existed)."""
    pieces = read_json(osp.join(run.run_dir, 'pretrain_seconds.json'))
    return round(sum(pieces), 1) if pieces else None


def _evaluate(run: CellRun, evaluator: Any) -> Dict[str, Any]:
    """One evaluator's result, read back if it finished before."""
    path = osp.join(run.run_dir, 'eval', f'{evaluator.name}.json')
    done = read_json(path)
    if done is not None:
        return done
    start = time.time()
    out = dict(evaluator(run))
    out.setdefault('time_s', {})[evaluator.name] = round(
        time.time() - start, 1)
    write_json(path, out)
    return out


def run_cell(spec: ExperimentSpec, cell: Cell,
             threads: Optional[int] = None) -> Dict[str, Any]:
    """Pre-train and evaluate one cell; its ``result.json``.

    A finished cell is read back, and an evaluator added to the spec
    since it finished is run on its checkpoints; an interrupted
    pre-training resumes; finished evaluators are read back from
    ``eval/``.
    """
    run = CellRun(spec, cell, osp.abspath(osp.join(spec.work_dir,
                                                   cell.name)))
    out = osp.join(run.run_dir, 'result.json')
    evaluators = [e for e in spec.evaluators
                  if not (cell.arm.lr_zero and not getattr(
                      e, 'on_lr_zero', False))]
    result = read_json(out)
    if result is not None:
        missing = [e for e in evaluators if not osp.isfile(
            osp.join(run.run_dir, 'eval', f'{e.name}.json'))]
        if not missing:
            return result
        evaluators = missing
    else:
        pretrain(run, threads)
        result = dict(
            cell=cell.name, arm=cell.arm.name, label=cell.arm.label,
            ratio=cell.ratio, seed=cell.seed, epochs=spec.epochs,
            images=spec.images, config=cell.arm.config,
            ratio_var=spec.fields(cell)['ratio_var'] if '{ratio_var}' in
            ' '.join(cell.arm.options) else None,
            command=show([sys.executable, TRAIN_TOOL, run.config,
                          '--work-dir', run.pretrain_dir, '--cfg-options']
                         + run.options),
            time_s=dict(pretrain=pretrain_seconds(run)))
    for evaluator in evaluators:
        part = _evaluate(run, evaluator)
        result['time_s'].update(part.pop('time_s', {}))
        result.update(part)
    write_json(out, result)
    return result


def run_baselines(spec: ExperimentSpec) -> Dict[str, Any]:
    """The spec's experiment-wide evaluators (raw pixels, initial weights),
    each once, read back when done."""
    out: Dict[str, Any] = {}
    for baseline in spec.baselines:
        path = osp.join(osp.abspath(spec.work_dir), 'baselines',
                        f'{baseline.name}.json')
        done = read_json(path)
        if done is None:
            start = time.time()
            done = dict(baseline(spec), seconds=None)
            done['seconds'] = round(time.time() - start, 1)
            write_json(path, done)
        out[baseline.name] = done
    return out


def collect(spec: ExperimentSpec) -> List[Dict[str, Any]]:
    """The result of every finished cell of the spec, in cell order."""
    runs = []
    for cell in spec.cells():
        res = read_json(osp.join(spec.work_dir, cell.name, 'result.json'))
        if res is not None:
            runs.append(res)
    return runs


def _pretrain_parallel(spec: ExperimentSpec, cells: Sequence[Cell]) -> None:
    """Pre-train ``cells``, ``spec.jobs`` at a time, the CPU's threads
    split among them."""
    from concurrent.futures import ThreadPoolExecutor
    threads = max(1, (os.cpu_count() or 1) // spec.jobs)
    runs = [CellRun(spec, c, osp.abspath(osp.join(spec.work_dir, c.name)))
            for c in cells
            if not osp.isfile(osp.join(spec.work_dir, c.name,
                                       'result.json'))]
    with ThreadPoolExecutor(spec.jobs) as pool:
        for f in [pool.submit(pretrain, r, threads) for r in runs]:
            f.result()


def run_experiment(spec: ExperimentSpec,
                   cells: Optional[Sequence[Cell]] = None,
                   on_result: Any = None) -> List[Dict[str, Any]]:
    """Every cell of ``spec`` (or ``cells``), finished ones skipped, with
    ``on_result(spec, results)`` after each (e.g. to write the results
    file, so that a partial experiment is kept) and an ETA.

    Returns:
        list[dict]: The results of the cells, in order.
    """
    cells = list(spec.cells() if cells is None else cells)
    start, results, measured = time.time(), [], []
    if spec.jobs > 1:
        _pretrain_parallel(spec, cells)
    for i, cell in enumerate(cells):
        t0 = time.time()
        fresh = not osp.isfile(osp.join(spec.work_dir, cell.name,
                                        'result.json'))
        res = run_cell(spec, cell)
        results.append(res)
        if fresh:  # cells read back would make the ETA too short
            measured.append(time.time() - t0)
        if on_result is not None:
            on_result(spec, results)
        left = len(cells) - i - 1
        eta = (f', ETA {hms(sum(measured) / len(measured) * left)}'
               if measured and left else '')
        print(f'--- {i + 1}/{len(cells)} cells done ({cell.name}), '
              f'{hms(time.time() - start)} elapsed{eta}', flush=True)
    return results
