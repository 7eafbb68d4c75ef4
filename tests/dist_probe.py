"""Test-only hook: every rank writes what each training iteration did.

Imported by the training processes through ``custom_imports`` with
``tests/`` on ``PYTHONPATH`` (see ``tests/test_reproducibility.py``). For
iteration ``i`` (1-based) of rank ``r`` it saves
``<work_dir>/probe/rank<r>_iter<i>.pt`` holding the mask (an iBOT model's
``generate_masks`` output, else the first ``SalienceMasker``'s
``last_masking.mask``, else, in a model without one such as CMAE, the mask
its backbone returns), the loss, the batch's ``sample_idx`` values, the
batch size, the world size, ``torch.initial_seed()`` and, for iBoT, the
head's teacher temperatures and whether the last layer was frozen.
"""
import os
import os.path as osp
import signal
import subprocess
import time

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class MaskProbeHook(Hook):
    priority = 'LOWEST'

    def before_train(self, runner):
        model = self._model(runner)
        self._masker = None
        if hasattr(model, 'generate_masks'):  # iBOT: keep its last masks
            generate = model.generate_masks

            def recorded(*args, **kwargs):
                model._probe_masks = generate(*args, **kwargs)
                return model._probe_masks

            model.generate_masks = recorded
            return
        from mmsbam import SalienceMasker
        self._masker = next((m for m in model.modules()
                             if isinstance(m, SalienceMasker)), None)
        if self._masker is None:  # e.g. CMAE: (latent, mask, ids_restore)
            model.backbone.register_forward_hook(self._keep_mask)

    def _keep_mask(self, module, args, output):
        if isinstance(output, tuple) and len(output) == 3:
            self._mask = output[1]

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = self._model(runner)
        if hasattr(model, '_probe_masks'):
            mask = model._probe_masks
        elif self._masker is not None:
            mask = self._masker.last_masking.mask
        else:
            mask = self._mask
        samples = data_batch['data_samples']
        record = dict(mask=mask.detach().cpu().clone(),
                      loss=outputs['loss'].detach().cpu().clone(),
                      sample_idx=[int(s.sample_idx) for s in samples],
                      batch_size=len(samples),
                      world_size=get_world_size(),
                      torch_seed=torch.initial_seed(),
                      epoch=runner.epoch)
        head = getattr(model, 'head', None)
        if hasattr(head, 'teacher_patch_temp'):
            record.update(
                teacher_temp=head.teacher_temp,
                teacher_patch_temp=head.teacher_patch_temp,
                last_layer_frozen=runner.optim_wrapper.last_layer_frozen())
        out_dir = osp.join(runner.work_dir, 'probe')
        os.makedirs(out_dir, exist_ok=True)
        torch.save(
            record,
            osp.join(out_dir, f'rank{get_rank()}_iter{runner.iter + 1}.pt'))


# ------------------------------------------------ helpers for the test files
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN = osp.join(ROOT,
                    'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py')
#: 32 images, 16 per process and step; deterministic algorithms on.
TINY = [
    'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=16',
    'default_hooks.logger.interval=1', 'randomness.deterministic=True'
]


def probe_config(directory, random_state_hook=True, name='probe_cfg.py',
                 base=PRETRAIN, extra_hooks=()):
    """A config inheriting ``base`` (the Fashion-MNIST SBAM config), with
    the probe hook, ``extra_hooks`` (config strings) and with or without
    ``RandomStateHook``; returns its path."""
    hooks = list(extra_hooks)
    if random_state_hook:
        hooks.append("dict(type='RandomStateHook')")
    hooks.append("dict(type='MaskProbeHook')")
    path = osp.join(str(directory), name)
    with open(path, 'w') as f:
        f.write(f'_base_ = {base!r}\n'
                "custom_imports = dict(imports=['mmsbam', 'dist_probe'], "
                'allow_failed_imports=False)\n'
                f"custom_hooks = [{', '.join(hooks)}]\n")
    return path


def _env(**extra):
    import sys
    path = [ROOT, osp.join(ROOT, 'tests')]
    if os.environ.get('PYTHONPATH'):
        path.append(os.environ['PYTHONPATH'])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path),
                OMP_NUM_THREADS='1', PYTHON=sys.executable, **extra)


def _train_args(config, work_dir, options, resume, nproc):
    script = 'tools/train.py' if nproc == 1 else 'tools/dist_train.sh'
    args = [config] + ([str(nproc)] if nproc > 1 else [])
    args += ['--work-dir', str(work_dir)]
    if resume:
        args += ['--resume'] + ([] if resume == 'auto' else [resume])
    return script, args + ['--cfg-options', *TINY, *options]


def train(config, work_dir, *options, resume=None, nproc=1, port=None,
          check=True):
    """``tools/train.py`` (or ``tools/dist_train.sh`` for ``nproc > 1``)
    with the tiny data; returns the finished process (output in stdout).
    ``resume='auto'``: ``--resume`` without a value (the latest checkpoint
    of the work dir, if any)."""
    from conftest import _run_tool  # not at import: training imports us
    script, args = _train_args(config, work_dir, options, resume, nproc)
    env = _env(PORT=str(port)) if port else _env()
    return _run_tool(script, *args, check=check, env=env)


def train_killed(config, work_dir, *options, when, resume=None, nproc=1,
                 port=None, timeout=600):
    """Start :func:`train`'s command and SIGKILL all its processes (the
    shell, torchrun and the ranks, which torchrun starts in sessions of
    their own: like a lost node) as soon as ``when(work_dir)`` is true;
    returns its output. Fails if the run ended on its own first."""
    import sys
    script, args = _train_args(config, work_dir, options, resume, nproc)
    runner = ['bash'] if script.endswith('.sh') else [sys.executable]
    env = _env(PORT=str(port)) if port else _env()
    with open(str(work_dir) + '.log', 'a+') as log:  # every launch's
        start = log.tell()
        proc = subprocess.Popen([*runner, script, *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while (proc.poll() is None and not when(work_dir)
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            ended, reached = proc.poll(), when(work_dir)
        finally:
            _kill_all(proc)
        log.seek(start)
        out = log.read()
    assert ended is None and reached, \
        f'{script}: exit status {ended}, moment reached {reached}:\n' \
        f'{out[-3000:]}'
    return out


def _kill_all(proc):
    """SIGKILL ``proc`` and every process below it, if it still runs."""
    if proc.poll() is not None:
        return
    for pid in [proc.pid, *_descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:  # ended meanwhile
            pass
    proc.wait()


def _descendants(pid):
    """Every process below ``pid`` (from ``/proc``), children first."""
    children = {}
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def probe(work_dir, iteration, rank=0):
    """What rank ``rank`` recorded at 1-based ``iteration``."""
    return torch.load(
        osp.join(str(work_dir), 'probe', f'rank{rank}_iter{iteration}.pt'),
        weights_only=True)


def probes(work_dir):
    """Sorted ``(rank, iteration)`` pairs the run recorded."""
    import re
    found = []
    for name in os.listdir(osp.join(str(work_dir), 'probe')):
        m = re.fullmatch(r'rank(\d+)_iter(\d+)\.pt', name)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return sorted(found)
