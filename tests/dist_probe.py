"""Test-only hook: every rank writes what each training iteration did.

Imported by the training processes through ``custom_imports`` with
``tests/`` on ``PYTHONPATH`` (see ``tests/test_reproducibility.py``). For
iteration ``i`` (1-based) of rank ``r`` it saves
``<work_dir>/probe/rank<r>_iter<i>.pt`` holding the backbone's mask
(``last_masking['mask']``), the loss, the batch's ``sample_idx`` values, the
batch size and the world size.
"""
import os
import os.path as osp

import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class MaskProbeHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        record = model.backbone.last_masking
        samples = data_batch['data_samples']
        out_dir = osp.join(runner.work_dir, 'probe')
        os.makedirs(out_dir, exist_ok=True)
        torch.save(
            dict(mask=record['mask'].detach().cpu().clone(),
                 loss=outputs['loss'].detach().cpu().clone(),
                 sample_idx=[int(s.sample_idx) for s in samples],
                 batch_size=len(samples),
                 world_size=get_world_size(),
                 epoch=runner.epoch),
            osp.join(out_dir, f'rank{get_rank()}_iter{runner.iter + 1}.pt'))
