"""``RandomStateHook``: random states in checkpoints, for an exact resume.

SBAM's masks come from torch's global random generator (``torch.rand`` in
the mask generators), the data pipeline's augmentations from numpy's and
Python's. MMEngine 0.10.7 saves none of them: a resumed run is re-seeded
from ``randomness.seed`` and draws other masks than the uninterrupted run
would have. Add the hook to a config::

    custom_hooks = [dict(type='RandomStateHook')]

and a run interrupted after a checkpoint and resumed from it draws the same
masks and augmentations, and computes the same losses and weights, as the
uninterrupted run (bit for bit on the CPU, measured by
``tests/test_reproducibility.py`` and ``tests/test_distributed.py``).

What is stored, under ``checkpoint['random_state']``::

    dict(version=1, world_size=W, iter=I,
         states=[rank0_state, ..., rank{W-1}_state])

each rank's state being ``dict(torch=ByteTensor, cuda=[ByteTensor, ...] or
None, numpy=dict(...), python=(version, (ints...), None))``: tensors, ints,
floats, strings, tuples and dicts only, so the entry loads under
``torch.load(weights_only=True)`` without any allowlist (numpy's key is
stored as an int64 tensor).

When:

* **Saving.** With one process, at ``before_save_checkpoint`` (the state at
  the moment of saving). With several, ``Runner.save_checkpoint`` runs on
  rank 0 only, so every rank captures its state at ``after_train_epoch``
  (this hook runs before the ``CheckpointHook``) and the states are gathered
  to rank 0 with ``all_gather_object``; rank 0 stores them when it saves the
  checkpoint of that iteration. A multi-process checkpoint saved at any
  other point (iteration-based ``CheckpointHook``, ``save_best``) gets no
  random state, with a warning, and resumes from the seeded state.
* **Restoring.** ``Runner.resume`` may re-seed (``set_randomness``) after
  the checkpoint hooks ran, and the train loop's ``before_train`` hooks
  follow; the states are therefore kept at ``after_load_checkpoint`` and
  set at the first ``before_train_epoch`` of a resumed run (this hook has
  ``VERY_HIGH`` priority, so before other hooks' ``before_train_epoch`` and
  before the epoch's data loader iterator is created, which draws from
  torch's generator), i.e. exactly where the uninterrupted run continued.
  Each rank restores its own entry. A checkpoint made with a different
  number of processes, or without random states, is resumed from the seeded
  state with a warning. ``load_from`` (not a resume) restores nothing.
* **Validation** runs between a checkpoint and the next epoch in the
  uninterrupted run only; the hook saves the states at ``before_val`` and
  restores them at ``after_val``, so validation never moves training's
  random streams (with or without a resume).

Not covered: workers (``num_workers > 0``) draw augmentations from their
own generators, which MMEngine seeds from ``seed + worker id + rank``
every time workers start, so non-persistent workers repeat per epoch and
resume exactly, persistent workers do not; a fixed ``randomness.seed`` is
needed (with ``seed=None`` the resumed run's sampler order differs);
``IterBasedTrainLoop`` resumes mid-stream and is not exact.
"""
import random
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

__all__ = ['RandomStateHook', 'get_random_state', 'set_random_state']

CHECKPOINT_KEY = 'random_state'
VERSION = 1


def get_random_state() -> Dict[str, Any]:
    """This process's torch (CPU, CUDA), numpy and Python random states,
    as tensors and plain Python values (``weights_only``-loadable)."""
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return dict(
        torch=torch.get_rng_state().clone(),
        cuda=cuda,
        numpy=dict(
            bit_generator=str(kind),
            key=torch.from_numpy(np.asarray(key).astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        python=random.getstate())


def set_random_state(state: Dict[str, Any]) -> List[str]:
    """Set the states :func:`get_random_state` returned.

    Returns:
        list[str]: What could not be restored (e.g. CUDA states on a
        machine with another number of GPUs); empty when all was.
    """
    problems = []
    torch.set_rng_state(state['torch'].cpu().to(torch.uint8))
    cuda = state.get('cuda')
    if cuda is not None:
        devices = (torch.cuda.device_count()
                   if torch.cuda.is_available() else 0)
        if devices == len(cuda):
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            problems.append(f'CUDA states of {len(cuda)} device(s), this '
                            f'process has {devices}')
    n = state['numpy']
    np.random.set_state((n['bit_generator'],
                         n['key'].cpu().numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['cached_gaussian']))
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    return problems


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every rank's random states in checkpoints and restore them on
    resume, so that a resumed run draws the same masks as an uninterrupted
    one. See the module docstring for what is stored, when, and the limits.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._gathered: Optional[List[Dict[str, Any]]] = None
        self._gathered_iter: Optional[int] = None
        self._pending: Optional[dict] = None
        self._val_state: Optional[Dict[str, Any]] = None

    # --------------------------------------------------------------- saving
    def after_train_epoch(self, runner) -> None:
        """With several processes, gather all ranks' states to rank 0 (a
        collective: every rank calls it) before the CheckpointHook saves."""
        if get_world_size() > 1:
            self._gathered = all_gather_object(get_random_state())
            self._gathered_iter = runner.iter

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        world_size = get_world_size()
        iteration = checkpoint.get('meta', {}).get('iter', runner.iter)
        if world_size == 1:
            states = [get_random_state()]
        elif self._gathered is not None and self._gathered_iter == iteration:
            states = self._gathered
        else:
            runner.logger.warning(
                'RandomStateHook: this checkpoint (iter '
                f'{iteration}) is saved outside an epoch end of a '
                f'{world_size}-process run; it gets no random states and '
                'a resume from it starts from the seeded state')
            return
        checkpoint[CHECKPOINT_KEY] = dict(
            version=VERSION, world_size=world_size, iter=int(iteration),
            states=list(states))

    # ------------------------------------------------------------ restoring
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keep the states; they are set when the resumed training starts
        (Runner.resume may re-seed after this hook)."""
        meta = checkpoint.get('meta', {}) or {}
        self._pending = dict(entry=checkpoint.get(CHECKPOINT_KEY),
                             iter=meta.get('iter'))

    def before_train_epoch(self, runner) -> None:
        pending, self._pending = self._pending, None
        if pending is None or runner.iter == 0 or \
                pending['iter'] != runner.iter:
            return  # not a resume (load_from or a fresh run)
        entry = pending['entry']
        world_size, rank = get_world_size(), get_rank()
        if entry is None:
            runner.logger.warning(
                'RandomStateHook: the resumed checkpoint has no random '
                'states (saved without this hook); training continues from '
                'the seeded state, so masks and augmentations differ from '
                'an uninterrupted run')
            return
        if entry.get('world_size') != world_size or \
                len(entry.get('states', [])) != world_size:
            runner.logger.warning(
                'RandomStateHook: the checkpoint holds the random states of '
                f'{entry.get("world_size")} process(es), this run has '
                f'{world_size}; the states are not restored and training '
                'continues from the seeded state (not an exact resume)')
            return
        problems = set_random_state(entry['states'][rank])
        for problem in problems:
            runner.logger.warning(
                f'RandomStateHook: not restored: {problem}')
        runner.logger.info(
            f'RandomStateHook: restored the random states of rank {rank} '
            f'of {world_size} saved at iter {entry.get("iter")}')

    # ----------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        self._val_state = get_random_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            set_random_state(self._val_state)
            self._val_state = None
