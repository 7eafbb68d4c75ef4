"""Test-only probes of AMR's batch mode across processes.

As a script: one of two gloo processes masks its own images with a tiny
``SBAMViT`` in AMR batch mode, without and with ``sync``, and saves what it
did to ``<out_dir>/rank<r>.pt``. ``tests/masking/test_amr.py`` runs it as
``torchrun --standalone --nproc_per_node=2 tests/dist_amr_probe.py OUT``.
Rank 0 gets faint noise, rank 1 strong ramps: different salient fractions.

As a module (``custom_imports``, ``tests/`` on ``PYTHONPATH``): the hook
``AMRProbeHook`` saves, after every training iteration of every rank, the
backbone masker's ratios, salience and mask to
``<work_dir>/amr_probe/rank<r>_iter<i>.pt``.
"""
import os
import os.path as osp
import sys

import torch
import torch.distributed as dist
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class AMRProbeHook(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        from mmengine.dist import get_rank
        from mmengine.model import is_model_wrapper
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        last = model.backbone.masker.last_masking
        out_dir = osp.join(runner.work_dir, 'amr_probe')
        os.makedirs(out_dir, exist_ok=True)
        torch.save(dict(ratio=last.ratio.cpu(), salience=last.salience.cpu(),
                        mask=last.mask.cpu()),
                   osp.join(out_dir,
                            f'rank{get_rank()}_iter{runner.iter + 1}.pt'))


def images(rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(6, 1, 32, 32, generator=g) * 0.05
    if rank == 1:
        ramp = torch.linspace(-3, 3, 32).view(1, 1, 1, 32)
        x = x + ramp * torch.arange(1, 7).view(6, 1, 1, 1)
    return x


def main(out_dir: str) -> None:
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    import mmsbam  # noqa: F401
    record = {}
    for sync in (False, True):
        torch.manual_seed(0)  # the same weights on both ranks
        backbone = MODELS.build(dict(
            type='SBAMViT', img_size=32, patch_size=4, mask_ratio=0.7,
            arch=dict(embed_dims=32, num_layers=2, num_heads=4,
                      feedforward_channels=64),
            patch_cfg=dict(in_channels=1),
            amr=dict(ratio_var=0.125, delta=0.3, mode='batch', sync=sync)))
        backbone.init_weights()
        backbone.eval()
        with torch.no_grad():
            _, mask, _ = backbone(images(rank))
        last = backbone.masker.last_masking
        record[sync] = dict(ratio=last.ratio, masked=mask.sum(1),
                            salience=last.salience)
    torch.save(record, f'{out_dir}/rank{rank}.pt')
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
