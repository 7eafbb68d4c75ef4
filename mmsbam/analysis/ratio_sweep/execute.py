"""Running the sweep: pre-training subprocesses (optionally in parallel),
k-NN in process, the linear probe, ``result.json`` per run with resume,
and the k-NN of the initial weights."""
import argparse
import os
import os.path as osp
import re
import subprocess
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .aggregate import read_json, write_json, write_results
from .knn import knn_accuracy
from .runs import (METHODS, hms, knn_cmd, linear_cmds, pretrain_cmd,
                   run_name, show, wants_convergence)

__all__ = [
    'TEST_ACC', 'run_logged', 'pretrain', 'do_run', 'run_sweep',
    'init_reference'
]

#: The top-1 accuracy in ``tools/test.py``'s log
TEST_ACC = re.compile(r'Epoch\(test\).*accuracy/top1: ([\d.]+)')
Grid = Sequence[Tuple[str, float, int]]


def run_logged(cmd: List[str], log_path: str,
               threads: Optional[int] = None) -> Tuple[str, float]:
    """Run ``cmd`` (from the current directory), its output into
    ``log_path``; ``threads`` sets ``OMP/MKL_NUM_THREADS``.

    Returns:
        tuple[str, float]: The output and the seconds it took.

    Raises:
        RuntimeError: ``cmd`` failed; with the end of its output.
    """
    os.makedirs(osp.dirname(log_path), exist_ok=True)
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


def _run_dir(method: str, ratio: float, seed: int,
             args: argparse.Namespace) -> str:
    return osp.join(osp.abspath(args.work_dir), run_name(method, ratio, seed))


def pretrain(method: str, ratio: float, seed: int, args: argparse.Namespace,
             sched: List[str], threads: Optional[int] = None
             ) -> Optional[float]:
    """Pre-train one run unless done; the seconds it took (None: reused)."""
    name = run_name(method, ratio, seed)
    run_dir = _run_dir(method, ratio, seed, args)
    cmd, _ = pretrain_cmd(run_dir, method, ratio, seed, sched, args)
    ckpt = osp.join(run_dir, 'pretrain', f'epoch_{args.epochs}.pth')
    if args.resume_sweep and (osp.isfile(osp.join(run_dir, 'result.json'))
                              or osp.isfile(ckpt)):
        print(f'[{name}] pre-training checkpoint exists, reused', flush=True)
        return None
    if args.resume_sweep and osp.isfile(
            osp.join(run_dir, 'pretrain', 'last_checkpoint')):
        # interrupted mid-run: continue from its latest epoch checkpoint
        # (RandomStateHook in the config makes this exact)
        cmd.insert(cmd.index('--cfg-options'), '--resume')
    print(f'[{name}] pre-training: {show(cmd)}', flush=True)
    _, t = run_logged(cmd, osp.join(run_dir, 'pretrain.log'), threads)
    print(f'[{name}] pre-trained in {t:.0f}s', flush=True)
    return round(t, 1)


def _convergence(res: Dict[str, Any], args: argparse.Namespace) -> None:
    """k-NN of every earlier epoch's checkpoint into ``res``."""
    curve = []
    for e in range(1, args.epochs + 1):
        path = osp.join(res['run_dir'], 'pretrain', f'epoch_{e}.pth')
        if e == args.epochs:
            a = res['knn_top1']
        else:
            a, t = knn_accuracy(path, res['method'], args)
            res['time_s']['convergence'] = round(
                res['time_s'].get('convergence', 0) + t, 1)
        curve.append(dict(epoch=e, knn_top1=a))
    res['convergence'] = curve
    print(f"[{run_name(res['method'], res['ratio'], res['seed'])}] "
          'convergence: '
          + ', '.join(f"{c['epoch']}:{c['knn_top1']:.2f}" for c in curve))


def _linear_probe(res: Dict[str, Any], lin_sched: List[str],
                  args: argparse.Namespace) -> None:
    """Train and test the linear probe of the run's checkpoint into
    ``res``."""
    name = run_name(res['method'], res['ratio'], res['seed'])
    run_dir = res['run_dir']
    train, test = linear_cmds(run_dir, res['checkpoint'], res['seed'],
                              lin_sched, args)
    res['commands'].update(linear_train=show(train), linear_test=show(test))
    print(f'[{name}] linear probe: {show(train)}', flush=True)
    _, t1 = run_logged(train, osp.join(run_dir, 'linear_train.log'))
    text, t2 = run_logged(test, osp.join(run_dir, 'linear_test.log'))
    match = TEST_ACC.search(text)
    if not match:
        raise RuntimeError(f'no test accuracy in {run_dir}/linear_test.log')
    res['linear_top1'] = float(match.group(1))
    res['time_s']['linear'] = round(t1 + t2, 1)
    print(f"[{name}] linear top-1 {res['linear_top1']:.2f}% "
          f'({t1 + t2:.0f}s)', flush=True)


def do_run(method: str, ratio: float, seed: int, args: argparse.Namespace,
           sched: List[str], lin_sched: List[str],
           pretrain_s: Any = 'run') -> Dict[str, Any]:
    """Pre-train (unless ``pretrain_s`` gives its time), k-NN, linear probe;
    write and return ``result.json``."""
    name = run_name(method, ratio, seed)
    run_dir = _run_dir(method, ratio, seed, args)
    out = osp.join(run_dir, 'result.json')
    if args.resume_sweep and read_json(out) is not None:
        print(f'[{name}] result exists, skipped')
        return read_json(out)
    cmd, rv = pretrain_cmd(run_dir, method, ratio, seed, sched, args)
    ckpt = osp.join(run_dir, 'pretrain', f'epoch_{args.epochs}.pth')
    res: Dict[str, Any] = dict(
        method=method, label=METHODS[method], ratio=ratio, seed=seed,
        ratio_var=rv, delta=args.delta if rv is not None else None,
        epochs=args.epochs, linear_epochs=args.linear_epochs,
        config=args.config, run_dir=run_dir, checkpoint=ckpt,
        commands=dict(pretrain=show(cmd), knn=show(knn_cmd(ckpt, args))),
        time_s={})
    if pretrain_s == 'run':
        pretrain_s = pretrain(method, ratio, seed, args, sched)
    res['time_s']['pretrain'] = pretrain_s
    acc, t = knn_accuracy(ckpt, method, args)
    res['knn_top1'], res['time_s']['knn'] = acc, round(t, 1)
    res['knn'] = dict(k=args.knn_k, temperature=args.knn_temperature,
                      feature='avg')
    print(f'[{name}] k-NN top-1 {acc:.2f}% ({t:.0f}s)', flush=True)
    if wants_convergence(method, ratio, args):
        _convergence(res, args)
    if args.linear_epochs > 0:
        _linear_probe(res, lin_sched, args)
    res['time_s']['total'] = round(sum(
        v for v in res['time_s'].values() if v), 1)
    write_json(out, res)
    return res


def _pretrain_parallel(grid: Grid, args: argparse.Namespace,
                       sched: List[str]) -> Dict[Tuple[str, float, int], Any]:
    """Every pre-training, ``args.jobs`` at a time, with
    ``cpu_count // jobs`` threads each; their seconds by run."""
    from concurrent.futures import ThreadPoolExecutor
    start = time.time()
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {key: pool.submit(pretrain, *key, args, sched, threads)
                   for key in grid}
        pre_times = {key: f.result() for key, f in futures.items()}
    print(f'pre-training ({args.jobs} in parallel, {threads} threads '
          f'each): {hms(time.time() - start)}', flush=True)
    return pre_times


def run_sweep(grid: Grid, args: argparse.Namespace, sched: List[str],
              lin_sched: List[str]) -> List[Dict[str, Any]]:
    """Every run of ``grid`` (method, ratio, seed), ``results.json``
    updated after each, with an ETA from the measured runs.

    Returns:
        list[dict]: The runs' results, in the order of ``grid``.
    """
    start = time.time()
    pre_times: Dict[Tuple[str, float, int], Any] = {}
    if args.jobs > 1:
        pre_times = _pretrain_parallel(grid, args, sched)
    runs, measured = [], []
    for i, (m, r, s) in enumerate(grid):
        res = do_run(m, r, s, args, sched, lin_sched,
                     pre_times.get((m, r, s), 'run'))
        runs.append(res)
        if res['time_s'].get('pretrain'):
            measured.append(res['time_s']['total'])
        write_results(args, runs)
        if measured and i + 1 < len(grid):
            eta = sum(measured) / len(measured) * (len(grid) - i - 1)
            print(f'--- {i + 1}/{len(grid)} runs done, '
                  f'{hms(time.time() - start)} elapsed, ETA {hms(eta)}',
                  flush=True)
    return runs


def init_reference(runs: List[Dict[str, Any]],
                   args: argparse.Namespace) -> Dict[str, float]:
    """k-NN of the initial weights of every seed of ``args.seeds`` not in
    ``results.json`` yet, written there with ``runs``.

    Returns:
        dict: ``{str(seed): top-1 %}``.
    """
    path = osp.join(args.work_dir, 'results.json')
    ref = (read_json(path) or {}).get('init_reference') or {}
    for seed in args.seeds:
        if str(seed) not in ref:
            ref[str(seed)], t = knn_accuracy(None, 'mae', args, seed)
            print(f'k-NN of the initial weights (seed {seed}): '
                  f'{ref[str(seed)]:.2f}% ({t:.0f}s)', flush=True)
    write_results(args, runs, dict(init_reference=ref))
    return ref
