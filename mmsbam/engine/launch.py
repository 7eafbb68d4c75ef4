"""What ``tools/train.py`` and ``tools/test.py`` share: argument handling
and the config fixes this stack needs, so both tools stay thin.

They behave like MMPretrain's own tools (work dirs, ``--resume``, ``--amp``,
``--cfg-options``, ``--launcher``); the additions are the explicit CPU
handling below and :func:`mmsbam.compat.strip_collate_scope`.
"""
import argparse
import gc
import os
import os.path as osp
from datetime import timedelta
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict, DictAction

from ..compat import atomic_checkpoint_saves, strip_collate_scope
from .preflight import (check_checkpoint_compatible, check_components,
                        check_dataset_built)

__all__ = [
    'add_common_args', 'load_config', 'apply_device_policy', 'preflight',
    'check_data', 'run', 'close_process_group'
]


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments both tools take, spelled as in MMPretrain."""
    parser.add_argument('--work-dir', help='folder for logs and checkpoints')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value (as in MMPretrain)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument(
        '--no-amp', action='store_true',
        help='replace AmpOptimWrapper by OptimWrapper (fp32), needed to run '
        'an AMP config such as the stock MAE one on a CPU')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """Read the config and apply the command line, as MMPretrain does."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        # MMPretrain's tools default to default_collate (MMEngine's own
        # default, pseudo_collate, returns lists).
        if isinstance(cfg.get(key), dict):
            cfg[key].setdefault('collate_fn', dict(type='default_collate'))
    strip_collate_scope(cfg)
    return cfg


def apply_device_policy(cfg: Config, amp: bool = False,
                        no_amp: bool = False,
                        logger_print=print) -> None:
    """Make the optimiser wrapper and the process-group backend match the
    machine, loudly: nothing is changed without a message.

    - ``--amp`` switches to ``AmpOptimWrapper``; ``--no-amp`` to
      ``OptimWrapper`` (dropping ``loss_scale``). ``AmpOptimWrapper``
      without a GPU is refused here with the fix in the message, instead
      of MMEngine's bare assertion.
    - Without CUDA, a ``nccl`` backend is replaced by ``gloo``; with the
      ``pytorch`` launcher the gloo process group is started here, because
      MMEngine's ``init_dist`` calls ``torch.cuda.set_device`` even on CPU,
      and DDP gets ``device_ids=None``, because MMEngine passes
      ``[LOCAL_RANK]``, which DDP refuses for CPU modules.
    """
    if amp and no_amp:
        raise ValueError('--amp and --no-amp exclude each other')
    wrapper: Optional[ConfigDict] = cfg.get('optim_wrapper')
    if wrapper is not None:
        if amp:
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
        elif no_amp and wrapper.get('type') == 'AmpOptimWrapper':
            wrapper.type = 'OptimWrapper'
            wrapper.pop('loss_scale', None)
            logger_print('mmsbam: --no-amp: AmpOptimWrapper -> OptimWrapper')
        if wrapper.get('type') == 'AmpOptimWrapper' and \
                not torch.cuda.is_available():
            raise RuntimeError(
                'optim_wrapper.type=AmpOptimWrapper needs a GPU and none is '
                'available; pass --no-amp to train in fp32 on the CPU')
    dist_cfg = cfg.setdefault('env_cfg', ConfigDict()).setdefault(
        'dist_cfg', ConfigDict(backend='nccl'))
    if torch.cuda.is_available() or cfg.launcher == 'none':
        return
    if dist_cfg.get('backend') == 'nccl':
        dist_cfg['backend'] = 'gloo'
        logger_print('mmsbam: no CUDA device, env_cfg.dist_cfg.backend '
                     'nccl -> gloo')
    if cfg.launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {cfg.launcher} without a GPU is not supported '
            '(MMEngine selects a CUDA device); use --launcher pytorch '
            '(tools/dist_train.sh) for CPU processes')
    wrapper_cfg = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_cfg['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper_cfg
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend=dist_cfg['backend'],
            timeout=timedelta(seconds=dist_cfg.get('timeout', 1800)))


def preflight(cfg: Config, train: bool = True) -> None:
    """Checks and fixes done before the Runner is built (see
    :mod:`mmsbam.engine.preflight`), so that a bad config fails before the
    Runner creates the work dir:

    - the model, the custom hooks and an mmsbam optimizer wrapper are built
      once from the config (the model on the meta device), so that a bad
      value raises its ``ValueError`` / ``TypeError`` here;
    - every local checkpoint the run will load (``--resume``,
      ``load_from``, the backbone's ``Pretrained`` init; for
      ``tools/test.py`` the checkpoint under test, strictly) must fit the
      config's model by key and shape, else ``RuntimeError`` listing the
      first mismatches;
    - checkpoints are saved atomically (temporary file, then rename);
    - training stops at the first NaN/Inf loss (``NonFiniteLossHook``,
      added to ``custom_hooks`` unless the config has one).
    """
    check_components(cfg, train=train)
    check_checkpoint_compatible(cfg, for_test=not train)
    if not train:
        return
    atomic_checkpoint_saves()
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(isinstance(h, dict) and h.get('type') in (
            'NonFiniteLossHook', 'mmpretrain.NonFiniteLossHook')
               for h in hooks):
        hooks.append(dict(type='NonFiniteLossHook'))
    cfg.custom_hooks = hooks


def run(cfg: Config, train: bool = True) -> None:
    """Check, build the Runner (or ``runner_type``), train or test, and
    close the process group (:func:`close_process_group`)."""
    _build_and_run(cfg, train)
    close_process_group()


def _build_and_run(cfg: Config, train: bool) -> None:
    """The Runner lives in this frame only, so that it can be freed when
    the frame returns."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    preflight(cfg, train=train)
    runner = (Runner.from_cfg(cfg)
              if 'runner_type' not in cfg else RUNNERS.build(cfg))
    check_data(runner, 'train' if train else 'test')
    runner.train() if train else runner.test()


def close_process_group() -> None:
    """Free the finished Runner, then end the process group on every rank
    together, so that gloo's threads are joined before the interpreter
    exits.

    ``destroy_process_group`` only drops ``torch.distributed``'s own
    references; the wrapped model (DDP's reducer) keeps the process group,
    and the Runner sits in reference cycles that only the garbage collector
    frees. So gloo's worker and transport threads (``pt_gloo_runloop``,
    ``gloo_tcp_loop``) were still running when the interpreter shut down
    (measured), the likely source of the occasional abort of a finished
    2-process CPU run (``terminate called without an active exception``).
    So: collect the Runner first, wait at a barrier (rank 0 may still be
    saving), then destroy the group, whose last reference goes with it
    (its threads are joined there); a final collection frees anything left.
    """
    gc.collect()
    if not torch.distributed.is_initialized():
        return
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    gc.collect()


def check_data(runner, split: str = 'train') -> None:
    """Build the ``split`` dataloader now and fail with the dataset and
    path in the message if it cannot be built or is empty."""
    check_dataset_built(runner, split)
