"""Masking-ratio sweep: MAE random masking vs SBM vs SBAM (AMR) (issue 5).

Pre-trains the encoder of a pre-training config (default: the Fashion-MNIST
demo, a 4-layer 64-d ViT on 28 px images with 4 px patches) with

* ``mae``:  stock random masking (``model.backbone.type=MAEViT``),
* ``sbm``:  salience-based masking (``SBAMViT``, fixed ratio),
* ``sbam``: SBM + per-image adaptive ratio
  (``SBAMViT`` + ``amr=dict(mode='sample', ...)``),

at each masking ratio and seed, every run a real, logged MMPretrain run
through MMEngine's Runner (``tools/train.py`` as a subprocess, own work
dir, ``--cfg-options`` overrides), then evaluates each frozen encoder by

* weighted k-NN (``mmsbam.knn``, k = 20, T = 0.07, mean of patch tokens,
  train split as memory bank, test split as queries; the same numbers as
  ``tools/knn_eval.py`` on the Fashion-MNIST config, computed in this
  process to save a start-up; both splits use the config's
  ``test_dataloader`` pipeline if it has one), and
* a linear probe (``--linear-config``, default
  ``configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py``, trained for
  ``--linear-epochs`` with ``tools/train.py`` and scored on the test split
  with ``tools/test.py``).

AMR's half-range must keep ``ratio ± ratio_var`` inside (0, 1); the sweep
uses ``ratio_var = min(--ratio-var, (1 - r) / 2, r / 2)`` per ratio
(0.1 at 0.45/0.6/0.75, 0.05 at 0.9) and records it in every result.

Outputs, under ``--work-dir``: ``{method}_r{ratio}_s{seed}/`` per run
(``pretrain/`` and ``linear/`` MMEngine work dirs, ``result.json``), and
the aggregate ``results.json``. ``--report`` turns ``results.json`` into a
markdown table (``--report-out``, default ``WORK_DIR/results.md``; use
``docs/results.md`` for the published one), ``ratio_sweep.png`` (accuracy
vs ratio) and ``convergence.png`` (k-NN accuracy vs pre-training epoch).

Definitions used in the report:

* *mean ± spread over seeds*: mean, and half the range (max − min) / 2, so
  that mean ± spread spans every seed's value.
* *spread across ratios* of a method: max − min over ratios of its
  seed-mean accuracy.
* *mean gain over MAE*: mean over the ratios both methods ran of
  (method's seed-mean − MAE's seed-mean), in points.

Sizing (2 CPU cores, ~2 hours): the demo config runs ~0.26 s/iter, 235
iterations per epoch at batch 256, ~61 s/epoch; k-NN over 70,000 images
~30 s; one linear-probe epoch is a frozen forward over 60,000 images
(~20-28 s) plus the test pass; each subprocess starts in ~6 s. Measured
here (2 cores, 2026-11-26, ``--epochs 2 --linear-epochs 2``, full data):
pre-training 144 s, k-NN 27 s, linear probe (train + test) 50 s per run.
With the defaults ``--epochs 3 --linear-epochs 2`` a run costs
~144 + 70 + 27 + 50 ~ 290 s, 24 runs ~ 116 min, plus ``--convergence``
(k-NN after epochs 1 and 2 for MAE and SBAM at 0.75, 2 seeds:
4 x 2 x 28 s ~ 4 min) and ``--init-reference`` (1 min): ~2 h 1 min.

Before starting, a short calibration run (``--calibrate-iters``
iterations of the real config, plus a timed forward pass) measures this
machine and the projected total (for ``--jobs 1``) is printed; the ETA
is updated after every run from the measured runs. ``--jobs 2`` runs
two pre-trainings at a time with one thread each (the smoke test uses it
to overlap the start-ups; whether it beats one run on two threads for
full epochs has not been measured). On a GPU or with an ImageNet-style
config pass ``--config``/``--linear-config`` (and larger ``--epochs``):
nothing here is specific to Fashion-MNIST except the defaults.

Examples:
    python tools/benchmark/ratio_sweep.py --convergence --init-reference
    python tools/benchmark/ratio_sweep.py --dry-run            # commands only
    python tools/benchmark/ratio_sweep.py --resume-sweep       # continue
    python tools/benchmark/ratio_sweep.py --report --report-out docs/results.md
    python tools/benchmark/ratio_sweep.py --epochs 1 --seeds 0 \\
        --ratios 0.6 0.75 --methods mae sbm --linear-epochs 0 \\
        --cfg-options train_dataloader.dataset.indices=32   # smoke
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import platform
import re
import shlex
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PRETRAIN_CONFIG = 'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
LINEAR_CONFIG = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
METHODS = {
    'mae': 'MAE (random)',
    'sbm': 'SBM (salience, fixed ratio)',
    'sbam': 'SBAM (SBM + AMR per image)',
}
DEFAULT_RATIOS = (0.45, 0.6, 0.75, 0.9)
TEST_ACC = re.compile(r'Epoch\(test\).*accuracy/top1: ([\d.]+)')
#: ``--report`` keeps everything from this line on in an existing report
DISCUSSION_MARKER = '<!-- discussion: kept by --report -->'


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('--config', default=PRETRAIN_CONFIG,
                        help='pre-training config')
    parser.add_argument('--linear-config', default=LINEAR_CONFIG,
                        help='linear-probe config (backbone init_cfg)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS))
    parser.add_argument('--ratios', nargs='+', type=float,
                        default=list(DEFAULT_RATIOS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--epochs', type=int, default=3,
                        help='pre-training epochs per run')
    parser.add_argument('--linear-epochs', type=int, default=2,
                        help='linear-probe epochs (0: k-NN only)')
    parser.add_argument('--ratio-var', type=float, default=0.1,
                        help='AMR half-range cap; per ratio '
                        'min(this, (1-r)/2, r/2)')
    parser.add_argument('--delta', type=float, default=0.2,
                        help='AMR salience threshold')
    parser.add_argument('--knn-k', type=int, default=20)
    parser.add_argument('--knn-temperature', type=float, default=0.07)
    parser.add_argument('--knn-batch-size', type=int, default=500)
    parser.add_argument('--work-dir', default='work_dirs/ratio_sweep')
    parser.add_argument('--resume-sweep', action='store_true',
                        help='skip runs whose result.json exists; reuse '
                        'finished pre-training checkpoints; resume '
                        'interrupted pre-trainings from their last epoch')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands, run nothing')
    parser.add_argument('--convergence', action='store_true',
                        help='k-NN after every pre-training epoch for the '
                        '--convergence-methods at --convergence-ratio')
    parser.add_argument('--convergence-methods', nargs='+',
                        default=['mae', 'sbam'], choices=list(METHODS))
    parser.add_argument('--convergence-ratio', type=float, default=0.75)
    parser.add_argument('--init-reference', action='store_true',
                        help='also k-NN of the initial weights per seed '
                        '(the floor pre-training must beat; ~30 s each)')
    parser.add_argument('--calibrate-iters', type=int, default=10,
                        help='iterations of the timing run before the '
                        'sweep (0: no calibration)')
    parser.add_argument('--report', action='store_true',
                        help='only aggregate WORK_DIR and write the report')
    parser.add_argument('--report-out', help='markdown file of --report '
                        '(default WORK_DIR/results.md)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to every pre-training (and to k-NN)')
    parser.add_argument('--linear-cfg-options', nargs='+', default=[],
                        metavar='KEY=VALUE',
                        help='passed to linear-probe training and test')
    parser.add_argument('--jobs', type=int, default=1,
                        help='pre-trainings run in parallel (each with '
                        'cpu_count/jobs threads); evaluation stays serial')
    parser.add_argument('--train-args', nargs='+', default=[],
                        help='extra tools/train.py arguments, written '
                        'with "=": --train-args=--amp')
    args = parser.parse_args(argv)
    for r in args.ratios:
        if not 0 < r < 1:
            parser.error(f'--ratios must be in (0, 1), got {r}')
    if args.epochs < 1 or args.linear_epochs < 0:
        parser.error('--epochs must be >= 1 and --linear-epochs >= 0')
    return args


# --------------------------------------------------------------------------
# run definitions
# --------------------------------------------------------------------------
def amr_ratio_var(ratio: float, cap: float = 0.1) -> float:
    """Largest half-range <= ``cap`` that keeps ratio ± it inside (0, 1)."""
    return round(min(cap, (1.0 - ratio) / 2, ratio / 2), 6)


def run_name(method: str, ratio: float, seed: int) -> str:
    return f'{method}_r{ratio:.2f}_s{seed}'


def load_cfg(path: str, options: Sequence[str] = ()) -> Any:
    """The config with ``options`` merged (mmengine only; no model)."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(path)
    if options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(['--o', *options]).o)
    return cfg


def schedule_options(cfg: Any, epochs: int) -> List[str]:
    """``--cfg-options`` that fit the config's LR schedule to ``epochs``.

    Schedulers ending at the config's ``max_epochs`` (the main decay) are
    stretched or cut to end at ``epochs`` (``T_max = end - begin``); the
    warm-up is kept. When ``epochs`` does not exceed the warm-up, the
    warm-up is squeezed into the first half of ``epochs`` and the rest into
    the second (fractional epochs are fine with ``convert_to_iter_based``).
    """
    old = cfg.train_cfg.get('max_epochs')
    opts = [f'train_cfg.max_epochs={epochs}']
    if 'val_interval' in cfg.train_cfg:
        opts.append(f'train_cfg.val_interval={epochs}')
    scheds = cfg.get('param_scheduler') or []
    if isinstance(scheds, dict):
        scheds = [scheds]
    if not old or not scheds:
        return opts
    warm_end = max([s.get('end', old) for s in scheds
                    if s.get('end', old) < old] or [0])

    def squeeze(x: float) -> float:
        # warm-up into the first half of ``epochs``, the rest into the second
        half = epochs / 2
        if warm_end <= 0:
            return x * epochs / old
        if x <= warm_end:
            return x * half / warm_end
        return half + (x - warm_end) * half / (old - warm_end)

    for i, s in enumerate(scheds):
        if not s.get('by_epoch', True):
            continue
        begin, end = s.get('begin', 0), s.get('end', old)
        if epochs > warm_end:
            if end >= old:
                opts.append(f'param_scheduler.{i}.end={epochs}')
                if 'T_max' in s:
                    opts.append(f'param_scheduler.{i}.T_max={epochs - begin}')
        else:
            b, e = squeeze(begin), squeeze(end)
            opts += [f'param_scheduler.{i}.begin={b:g}',
                     f'param_scheduler.{i}.end={e:g}']
            if 'T_max' in s:
                opts.append(f'param_scheduler.{i}.T_max={e - b:g}')
    return opts


def method_options(method: str, ratio: float, args) -> Tuple[List[str],
                                                             Optional[float]]:
    """Backbone overrides of a method at a ratio; and AMR's ratio_var."""
    opts = [f'model.backbone.mask_ratio={ratio}']
    if method == 'mae':
        return ['model.backbone.type=MAEViT'] + opts, None
    opts = ['model.backbone.type=SBAMViT'] + opts
    if method == 'sbm':
        return opts, None
    rv = amr_ratio_var(ratio, args.ratio_var)
    return opts + ['model.backbone.amr.mode=sample',
                   f'model.backbone.amr.ratio_var={rv}',
                   f'model.backbone.amr.delta={args.delta}'], rv


def wants_convergence(method: str, ratio: float, args) -> bool:
    return (args.convergence and method in args.convergence_methods
            and abs(ratio - args.convergence_ratio) < 1e-9)


def pretrain_cmd(run_dir: str, method: str, ratio: float, seed: int,
                 sched: List[str], args) -> Tuple[List[str], Optional[float]]:
    mopts, rv = method_options(method, ratio, args)
    keep = -1 if wants_convergence(method, ratio, args) else 1
    opts = (mopts + sched + [f'randomness.seed={seed}',
                             f'default_hooks.checkpoint.max_keep_ckpts={keep}']
            + list(args.cfg_options))
    return ([sys.executable, 'tools/train.py', args.config, '--work-dir',
             osp.join(run_dir, 'pretrain')] + list(args.train_args)
            + ['--cfg-options'] + opts), rv


def linear_cmds(run_dir: str, ckpt: str, seed: int, lin_sched: List[str],
                args) -> Tuple[List[str], List[str]]:
    lin_dir = osp.join(run_dir, 'linear')
    train = ([sys.executable, 'tools/train.py', args.linear_config,
              '--work-dir', lin_dir, '--no-validate', '--cfg-options',
              f'model.backbone.init_cfg.checkpoint={ckpt}',
              f'randomness.seed={seed}', 'default_hooks.checkpoint.interval='
              f'{args.linear_epochs}'] + lin_sched
             + list(args.linear_cfg_options))
    test = [sys.executable, 'tools/test.py', args.linear_config,
            osp.join(lin_dir, f'epoch_{args.linear_epochs}.pth'),
            '--work-dir', osp.join(run_dir, 'linear_test')]
    if args.linear_cfg_options:
        test += ['--cfg-options'] + list(args.linear_cfg_options)
    return train, test


def knn_cmd(ckpt: str, args) -> List[str]:
    """The tools/knn_eval.py command giving the same k-NN number."""
    cmd = [sys.executable, 'tools/knn_eval.py', args.config, ckpt, '--k',
           str(args.knn_k), '--temperature', str(args.knn_temperature)]
    if args.cfg_options:
        cmd += ['--cfg-options'] + list(args.cfg_options)
    return cmd


def show(cmd: Sequence[str]) -> str:
    return ' '.join(shlex.quote(c) for c in cmd)


def run_logged(cmd: List[str], log_path: str,
               threads: Optional[int] = None) -> Tuple[str, float]:
    """Run ``cmd`` from the repo root, its output into ``log_path``."""
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env)
    with open(log_path, 'w') as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f'failed ({proc.returncode}): {show(cmd)}\n'
                           f'{proc.stdout[-4000:]}\nlog: {log_path}')
    return proc.stdout, time.time() - start


# --------------------------------------------------------------------------
# k-NN, in process
# --------------------------------------------------------------------------
_KNN_CACHE: Dict[str, Any] = {}


def _knn_setup(args) -> Any:
    if 'cfg' not in _KNN_CACHE:
        from mmpretrain.utils import register_all_modules
        register_all_modules(init_default_scope=True)
        import mmsbam  # noqa: F401  (registers SBAMViT)
        from mmsbam.compat import strip_collate_scope
        cfg = load_cfg(osp.join(ROOT, args.config), args.cfg_options)
        strip_collate_scope(cfg)
        if not osp.isabs(cfg.train_dataloader.dataset.get('data_root', '/')):
            ds = cfg.train_dataloader.dataset
            ds.data_root = osp.join(ROOT, ds.data_root)
        _KNN_CACHE['cfg'] = cfg
    return _KNN_CACHE['cfg']


def knn_accuracy(ckpt: Optional[str], method: str, args,
                 seed: int = 0) -> Tuple[float, float]:
    """k-NN top-1 (%) of a checkpoint (None: the initial weights drawn
    with ``seed``, as ``tools/knn_eval.py --init``), and the seconds."""
    import torch
    from mmengine.runner import load_checkpoint
    from mmsbam.knn import (build_encoder_model, extract_features,
                            knn_top1, split_loader)
    cfg = _knn_setup(args)
    start = time.time()
    torch.manual_seed(seed)
    model = build_encoder_model(
        cfg, 'MAEViT' if method == 'mae' else 'SBAMViT')
    if ckpt is None:
        model.init_weights()
    else:
        load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    if torch.cuda.is_available():
        model = model.cuda()
    with torch.no_grad():
        # features to the CPU: knn_classify votes in CPU tensors
        train, test = (tuple(t.cpu() for t in extract_features(
            model, split_loader(cfg, split, args.knn_batch_size), 'avg', 0))
            for split in (False, True))
    k = min(args.knn_k, len(train[1]))
    acc = knn_top1(train, test, [k], args.knn_temperature)[k]
    return acc, time.time() - start


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------
def read_json(path: str) -> Optional[Dict[str, Any]]:
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_json(path: str, data: Any) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def pretrain(method: str, ratio: float, seed: int, args, sched: List[str],
             threads: Optional[int] = None) -> Optional[float]:
    """Pre-train one run unless done; the seconds it took (None: reused)."""
    name = run_name(method, ratio, seed)
    run_dir = osp.join(osp.abspath(args.work_dir), name)
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


def do_run(method: str, ratio: float, seed: int, args, sched: List[str],
           lin_sched: List[str], pretrain_s: Any = 'run') -> Dict[str, Any]:
    """Pre-train (unless ``pretrain_s`` gives its time), k-NN, linear probe;
    write and return ``result.json``."""
    name = run_name(method, ratio, seed)
    run_dir = osp.join(osp.abspath(args.work_dir), name)
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
        curve = []
        for e in range(1, args.epochs + 1):
            path = osp.join(run_dir, 'pretrain', f'epoch_{e}.pth')
            if e == args.epochs:
                a = acc
            else:
                a, t = knn_accuracy(path, method, args)
                res['time_s']['convergence'] = round(
                    res['time_s'].get('convergence', 0) + t, 1)
            curve.append(dict(epoch=e, knn_top1=a))
        res['convergence'] = curve
        print(f'[{name}] convergence: '
              + ', '.join(f"{c['epoch']}:{c['knn_top1']:.2f}" for c in curve))
    if args.linear_epochs > 0:
        train, test = linear_cmds(run_dir, ckpt, seed, lin_sched, args)
        res['commands'].update(linear_train=show(train),
                               linear_test=show(test))
        print(f'[{name}] linear probe: {show(train)}', flush=True)
        _, t1 = run_logged(train, osp.join(run_dir, 'linear_train.log'))
        text, t2 = run_logged(test, osp.join(run_dir, 'linear_test.log'))
        match = TEST_ACC.search(text)
        if not match:
            raise RuntimeError(
                f'no test accuracy in {run_dir}/linear_test.log')
        res['linear_top1'] = float(match.group(1))
        res['time_s']['linear'] = round(t1 + t2, 1)
        print(f"[{name}] linear top-1 {res['linear_top1']:.2f}% "
              f'({t1 + t2:.0f}s)', flush=True)
    res['time_s']['total'] = round(sum(
        v for v in res['time_s'].values() if v), 1)
    write_json(out, res)
    return res


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def calibrate(args, sched_fn) -> Dict[str, float]:
    """Seconds per iteration, start-up, per-image forward, on this machine."""
    cfg = load_cfg(osp.join(ROOT, args.config), args.cfg_options)
    batch = cfg.train_dataloader.batch_size
    n_iter = args.calibrate_iters
    cal_dir = osp.join(osp.abspath(args.work_dir), '_calibration')
    cmd, _ = pretrain_cmd(cal_dir, 'sbam', args.ratios[0], 0,
                          sched_fn(cfg, 1), args)
    cmd += [f'train_dataloader.dataset.indices={batch * n_iter}',
            f'default_hooks.logger.interval={max(1, n_iter // 2)}']
    print(f'calibration ({n_iter} iterations): {show(cmd)}', flush=True)
    _, wall = run_logged(cmd, osp.join(cal_dir, 'calibration.log'))
    times = []
    for path in glob.glob(osp.join(cal_dir, 'pretrain', '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            times += [json.loads(line)['time'] for line in f
                      if '"time"' in line]
    t_iter = times[-1] if times else wall / n_iter
    startup = max(wall - t_iter * n_iter, 0.0)
    # frozen forward per image (k-NN, linear probe)
    import torch
    from mmsbam.knn import build_encoder_model, split_loader
    kcfg = _knn_setup(args)
    model = build_encoder_model(kcfg, 'SBAMViT').eval()
    if torch.cuda.is_available():
        model = model.cuda()
    loader = split_loader(kcfg, True, args.knn_batch_size)
    start, n = time.time(), 0
    with torch.no_grad():
        for i, data in enumerate(loader):
            data = model.data_preprocessor(data, training=False)
            model.backbone(data['inputs'], mask=None)
            n += len(data['inputs'])
            if i >= 3:
                break
    t_img = (time.time() - start) / max(n, 1)
    return dict(iter=t_iter, startup=startup, image=t_img)


def dataset_sizes(args) -> Tuple[int, int, int]:
    """(train images, test images, train batch size) of the config."""
    from mmpretrain.registry import DATASETS
    from mmsbam.knn import split_dataset
    cfg = _knn_setup(args)
    sizes = []
    for test_mode in (False, True):
        ds = split_dataset(cfg, test_mode)
        ds.update(pipeline=[])
        sizes.append(len(DATASETS.build(ds)))
    n_train, n_test = sizes
    return n_train, n_test, cfg.train_dataloader.batch_size


def project(cal: Dict[str, float], sizes: Tuple[int, int, int],
            args) -> Dict[str, float]:
    """Projected seconds per phase of one run, and of the whole sweep."""
    n_train, n_test, batch = sizes
    iters = math.ceil(n_train / batch) * args.epochs
    knn = (n_train + n_test) * cal['image']
    pre = cal['startup'] + iters * cal['iter']
    lin = 0.0
    if args.linear_epochs:
        lin = (2 * cal['startup'] + args.linear_epochs * n_train
               * cal['image'] * 1.1 + n_test * cal['image'])
    runs = len(args.methods) * len(args.ratios) * len(args.seeds)
    conv = sum(1 for m in args.methods for r in args.ratios
               if wants_convergence(m, r, args)) * len(args.seeds)
    total = runs * (pre + knn + lin) + conv * (args.epochs - 1) * knn
    return dict(pretrain=pre, knn=knn, linear=lin, run=pre + knn + lin,
                total=total, runs=runs)


def hms(s: float) -> str:
    s = int(round(s))
    return f'{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s'


# --------------------------------------------------------------------------
# aggregation and report
# --------------------------------------------------------------------------
def mean_spread(values: Sequence[float]) -> Dict[str, Any]:
    """Mean and half-range over seeds (mean ± spread spans all values)."""
    vals = [float(v) for v in values]
    return dict(mean=sum(vals) / len(vals),
                spread=(max(vals) - min(vals)) / 2, n=len(vals),
                values=vals)


def aggregate(runs: Sequence[Dict[str, Any]],
              init_reference: Optional[Dict[str, float]] = None
              ) -> Dict[str, Any]:
    """Table, spread across ratios, and mean gain over MAE per metric.

    ``init_reference`` (k-NN of the initial weights per seed) becomes
    epoch 0 of every convergence curve whose seeds it covers: the same
    weights every method starts from.
    """
    summary: Dict[str, Any] = {}
    for metric in ('knn_top1', 'linear_top1'):
        table: Dict[str, Dict[str, Any]] = {}
        for run in runs:
            if run.get(metric) is None:
                continue
            cell = table.setdefault(run['method'], {}).setdefault(
                f"{run['ratio']:.2f}", [])
            cell.append(run[metric])
        if not table:
            continue
        table = {m: {r: mean_spread(v) for r, v in sorted(cells.items())}
                 for m, cells in table.items()}
        across = {m: max(c['mean'] for c in cells.values())
                  - min(c['mean'] for c in cells.values())
                  for m, cells in table.items()}
        gain = {}
        for m, cells in table.items():
            if m == 'mae' or 'mae' not in table:
                continue
            common = sorted(set(cells) & set(table['mae']))
            if common:
                gain[m] = sum(cells[r]['mean'] - table['mae'][r]['mean']
                              for r in common) / len(common)
        summary[metric] = dict(table=table, spread_across_ratios=across,
                               mean_gain_over_mae=gain)
    curves: Dict[str, Dict[str, List[float]]] = {}
    for run in runs:
        if not run.get('convergence'):
            continue
        curve = curves.setdefault(f"{run['method']}@{run['ratio']:.2f}", {})
        init = (init_reference or {}).get(str(run['seed']))
        if init is not None:
            curve.setdefault('0', []).append(init)
        for point in run['convergence']:
            curve.setdefault(str(point['epoch']), []).append(
                point['knn_top1'])
    summary['convergence'] = {
        key: {e: mean_spread(v) for e, v in sorted(pts.items(),
                                                   key=lambda x: int(x[0]))}
        for key, pts in curves.items()}
    return summary


def collect(work_dir: str) -> List[Dict[str, Any]]:
    runs = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'result.json'))):
        runs.append(read_json(path))
    return runs


def machine() -> Dict[str, Any]:
    info = dict(platform=platform.platform(), python=platform.python_version(),
                cpus=os.cpu_count(), processor=platform.processor())
    try:
        import torch
        info.update(torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    cuda=torch.cuda.get_device_name(0)
                    if torch.cuda.is_available() else None)
    except ImportError:
        pass
    return info


def write_results(args, runs: List[Dict[str, Any]],
                  extra: Optional[Dict[str, Any]] = None) -> str:
    path = osp.join(args.work_dir, 'results.json')
    old = read_json(path) or {}
    data = dict(old, runs=runs)
    data.update(extra or {})
    data['summary'] = aggregate(runs, data.get('init_reference'))
    write_json(path, data)
    return path


def _order(methods: Sequence[str]) -> List[str]:
    return [m for m in METHODS if m in methods]


def render_markdown(data: Dict[str, Any]) -> str:
    """The report: table method x ratio per metric, spreads, gains."""
    summary = data['summary']
    lines = ['# Masking-ratio sweep: MAE vs SBM vs SBAM', '']
    meta = data.get('meta', {})
    if meta.get('command'):
        lines += ['Command:', '', '```bash', meta['command'], '```', '']
    if meta.get('machine'):
        lines += ['Machine: ' + ', '.join(
            f'{k} {v}' for k, v in meta['machine'].items() if v), '']
    if meta.get('wall_s') is not None:
        lines += [f"Wall time of the sweep: {hms(meta['wall_s'])}.", '']
    runs = data.get('runs', [])
    if runs:
        r0 = runs[0]
        seeds = sorted({r['seed'] for r in runs})
        lines += [f"{len(runs)} runs; {r0['epochs']} pre-training epochs, "
                  f"linear probe {r0['linear_epochs']} epochs, seeds "
                  f"{seeds}; config `{r0['config']}`. AMR ratio_var per "
                  'ratio: ' + ', '.join(sorted({
                      f"{r['ratio']:.2f}: {r['ratio_var']}" for r in runs
                      if r.get('ratio_var') is not None})) + '.', '']
    lines += ['Cells: mean ± spread over seeds, spread = (max − min) / 2, '
              'top-1 % on the test split. Spread across ratios: max − min '
              'of the seed means over ratios. Mean gain: mean over ratios '
              'of (method − MAE).', '']
    names = {'knn_top1': 'k-NN top-1 (%)', 'linear_top1':
             'linear probe top-1 (%)'}
    ref = data.get('init_reference')
    if ref:
        ms = mean_spread(list(ref.values()))
        lines += [f"Reference: k-NN top-1 of the initial weights (no "
                  f"pre-training, seeds {sorted(ref)}): {ms['mean']:.2f} ± "
                  f"{ms['spread']:.2f} %.", '']
    for metric, name in names.items():
        if metric not in summary:
            continue
        s = summary[metric]
        ratios = sorted({r for cells in s['table'].values() for r in cells})
        lines += [f'## {name}', '',
                  '| method | ' + ' | '.join(ratios)
                  + ' | spread across ratios | mean gain over MAE |',
                  '|---' * (len(ratios) + 3) + '|']
        for m in _order(s['table']):
            cells = s['table'][m]
            row = [f"{cells[r]['mean']:.2f} ± {cells[r]['spread']:.2f}"
                   if r in cells else '–' for r in ratios]
            gain = s['mean_gain_over_mae'].get(m)
            lines.append(
                f'| {METHODS[m]} | ' + ' | '.join(row)
                + f" | {s['spread_across_ratios'][m]:.2f} | "
                + ('–' if gain is None else f'{gain:+.2f}') + ' |')
        lines.append('')
    if summary.get('convergence'):
        lines += ['## Convergence (k-NN top-1 % after each epoch)', '',
                  '| run | ' + ' | '.join(
                      f'epoch {e}' for e in next(iter(
                          summary['convergence'].values()))) + ' |']
        lines.append('|---' * (1 + len(next(iter(
            summary['convergence'].values())))) + '|')
        for key, pts in summary['convergence'].items():
            m, r = key.split('@')
            lines.append(f'| {METHODS[m]} at {r} | ' + ' | '.join(
                f"{p['mean']:.2f} ± {p['spread']:.2f}" for p in pts.values())
                + ' |')
        lines.append('')
    for png in data.get('plots', []):
        lines += [f'![{osp.splitext(osp.basename(png))[0]}]({png})', '']
    return '\n'.join(lines)


def plot_ratio(summary: Dict[str, Any], path: str) -> Optional[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    metrics = [m for m in ('knn_top1', 'linear_top1') if m in summary]
    if not metrics:
        return None
    fig = Figure(figsize=(5 * len(metrics), 4))
    FigureCanvasAgg(fig)
    for i, metric in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        for m in _order(summary[metric]['table']):
            cells = summary[metric]['table'][m]
            xs = [float(r) for r in cells]
            ax.errorbar(xs, [c['mean'] for c in cells.values()],
                        yerr=[c['spread'] for c in cells.values()],
                        marker='o', capsize=3, label=METHODS[m])
        ax.set_xlabel('masking ratio')
        ax.set_ylabel('top-1 (%)')
        ax.set_title('k-NN' if metric == 'knn_top1' else 'linear probe')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def plot_convergence(summary: Dict[str, Any], path: str) -> Optional[str]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    curves = summary.get('convergence')
    if not curves:
        return None
    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for key, pts in curves.items():
        m, r = key.split('@')
        ax.errorbar([int(e) for e in pts], [p['mean'] for p in pts.values()],
                    yerr=[p['spread'] for p in pts.values()], marker='o',
                    capsize=3, label=f'{METHODS[m]}, ratio {r}')
    ax.set_xlabel('pre-training epoch')
    ax.set_ylabel('k-NN top-1 (%)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def report(args) -> str:
    """Aggregate the per-run results and write markdown + plots."""
    runs = collect(args.work_dir)
    if not runs:
        raise SystemExit(f'no */result.json under {args.work_dir}')
    path = write_results(args, runs)
    data = read_json(path)
    out = args.report_out or osp.join(args.work_dir, 'results.md')
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(out))[0]
    plots = [plot_ratio(data['summary'],
                        osp.join(out_dir, f'{stem}_ratio_sweep.png')),
             plot_convergence(data['summary'],
                              osp.join(out_dir, f'{stem}_convergence.png'))]
    data['plots'] = [osp.relpath(p, out_dir) for p in plots if p]
    text = render_markdown(data)
    # hand-written discussion below the marker survives a new report
    old = open(out).read() if osp.isfile(out) else ''
    if DISCUSSION_MARKER in old:
        text += '\n' + old[old.index(DISCUSSION_MARKER):]
    with open(out, 'w') as f:
        f.write(text)
    print(f'report: {out}; plots: {data["plots"]}; data: {path}')
    return out


# --------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    # paths given relative to the caller's directory keep their meaning
    args.work_dir = osp.abspath(args.work_dir)
    if args.report_out:
        args.report_out = osp.abspath(args.report_out)
    for key in ('config', 'linear_config'):
        path = getattr(args, key)
        if osp.isfile(path) and not osp.isfile(osp.join(ROOT, path)):
            setattr(args, key, osp.abspath(path))
    os.chdir(ROOT)
    if args.report:
        report(args)
        return
    cfg = load_cfg(args.config, args.cfg_options)
    sched = schedule_options(cfg, args.epochs)
    lin_sched = []
    if args.linear_epochs:
        lin_sched = schedule_options(load_cfg(args.linear_config),
                                     args.linear_epochs)
    grid = [(m, r, s) for r in args.ratios for m in args.methods
            for s in args.seeds]
    if args.dry_run:
        for m, r, s in grid:
            run_dir = osp.join(osp.abspath(args.work_dir), run_name(m, r, s))
            cmd, rv = pretrain_cmd(run_dir, m, r, s, sched, args)
            ckpt = osp.join(run_dir, 'pretrain', f'epoch_{args.epochs}.pth')
            print(f'# {run_name(m, r, s)}' + (f' (AMR ratio_var {rv})'
                                              if rv is not None else ''))
            print(show(cmd))
            print('# k-NN (in process; same as):', show(knn_cmd(ckpt, args)))
            if wants_convergence(m, r, args):
                print(f'# + k-NN of epoch_1..{args.epochs - 1}.pth')
            if args.linear_epochs:
                for c in linear_cmds(run_dir, ckpt, s, lin_sched, args):
                    print(show(c))
        print(f'# {len(grid)} runs')
        return
    os.makedirs(args.work_dir, exist_ok=True)
    if args.calibrate_iters > 0:
        cal = calibrate(args, schedule_options)
        proj = project(cal, dataset_sizes(args), args)
        print(f"calibration: {cal['iter']:.3f} s/iter, start-up "
              f"{cal['startup']:.1f} s, frozen forward "
              f"{1000 * cal['image']:.2f} ms/image")
        print(f"projected per run: pre-training {proj['pretrain']:.0f} s, "
              f"k-NN {proj['knn']:.0f} s, linear probe {proj['linear']:.0f} s"
              f"; {proj['runs']} runs: total {hms(proj['total'])}", flush=True)
    start = time.time()
    pre_times: Dict[Tuple[str, float, int], Any] = {}
    if args.jobs > 1:
        from concurrent.futures import ThreadPoolExecutor
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {key: pool.submit(pretrain, *key, args, sched, threads)
                       for key in grid}
            pre_times = {key: f.result() for key, f in futures.items()}
        print(f'pre-training ({args.jobs} in parallel, {threads} threads '
              f'each): {hms(time.time() - start)}', flush=True)
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
    if args.init_reference:
        path = osp.join(args.work_dir, 'results.json')
        ref = (read_json(path) or {}).get('init_reference') or {}
        for seed in args.seeds:
            if str(seed) not in ref:
                ref[str(seed)], t = knn_accuracy(None, 'mae', args, seed)
                print(f'k-NN of the initial weights (seed {seed}): '
                      f'{ref[str(seed)]:.2f}% ({t:.0f}s)', flush=True)
        write_results(args, runs, dict(init_reference=ref))
    wall = time.time() - start
    command = show(['python', 'tools/benchmark/ratio_sweep.py']
                   + list(argv if argv is not None else sys.argv[1:]))
    path = write_results(args, runs, dict(meta=dict(
        command=command, machine=machine(), wall_s=round(wall, 1),
        finished=time.strftime('%Y-%m-%d %H:%M:%S'))))
    print(f'{len(runs)} runs in {hms(wall)}; results: {path}')
    report(args)


if __name__ == '__main__':
    main()
