"""The contract every SBAM method keeps, over one table of methods.

For each row: the method's shipped config, shrunk to a tiny CPU version
(a 2-layer 32-d ViT on 28 px Fashion-MNIST, 16 images, batch 8), trains two
iterations through MMEngine's Runner; its masks follow MMPretrain's
convention (shape, dtype, exact count, 1 = masked) and hide more salient
tokens than they leave visible; its checkpoint loads into the stock class.
SBAMHook finds the masker (in MAE the backbone's, in iBoT the mask
generator's), logs its statistics and draws. A new method adds a row, not a
test file.
"""
import copy
import glob
import os.path as osp
from typing import NamedTuple

import pytest
import torch
from mmengine.config import Config

from conftest import ROOT
from mmsbam import SalienceMasker
from mmsbam.compat import strip_collate_scope
from mmsbam.masking import masking_statistics
from mmpretrain.registry import MODELS

TINY_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
IMG, PATCH = 28, 4
NUM_TOKENS = (IMG // PATCH)**2  # 49
BATCH = 8

DATA_PREPROCESSOR = dict(
    type='SelfSupDataPreprocessor', mean=[72.94], std=[90.02], to_rgb=False)
#: Fashion-MNIST in place of ImageNet, two iterations, fp32 on the CPU,
#: SBAMHook logging and drawing every iteration.
TINY_RUN = dict(
    train_dataloader=dict(
        batch_size=BATCH, num_workers=0, persistent_workers=False,
        dataset=dict(
            _delete_=True, type='FashionMNIST', data_root='data/fashion_mnist',
            test_mode=False, indices=2 * BATCH)),
    train_cfg=dict(max_epochs=1),
    default_hooks=dict(logger=dict(interval=1),
                       checkpoint=dict(interval=1)),
    custom_hooks=[dict(type='SBAMHook', interval=1, vis_interval=1)],
    randomness=dict(seed=0))
SINGLE_VIEW = [dict(type='RandomResizedCrop', scale=IMG,
                    crop_ratio_range=(0.6, 1.0)),
               dict(type='PackInputs')]
MULTI_VIEW = [
    dict(type='MultiView', num_views=[2, 2], transforms=[
        [dict(type='RandomResizedCrop', scale=IMG,
              crop_ratio_range=(0.25, 1.0))],
        [dict(type='RandomResizedCrop', scale=12,
              crop_ratio_range=(0.05, 0.25))]]),
    dict(type='PackInputs')]


class Method(NamedTuple):
    """One row: the shipped config, the stock class its checkpoint must
    load into (``extra_keys`` are the parameters the stock class lacks),
    how many images each masker masks per batch, and the overrides that
    shrink the config to the tiny one."""
    name: str
    config: str
    stock_type: str
    extra_keys: tuple
    masked_rows: int
    tiny: dict


METHODS = [
    Method(
        'mae', 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sbam.py',
        'MAEViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH, patch_cfg=dict(in_channels=1)),
            neck=dict(num_patches=NUM_TOKENS, patch_size=PATCH, in_chans=1,
                      embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4),
            head=dict(patch_size=PATCH, in_channels=1)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=SINGLE_VIEW)),
            optim_wrapper=dict(type='OptimWrapper', _delete_=True,
                               optimizer=dict(type='AdamW', lr=1e-3)))),
    Method(
        'ibot',
        'configs/ibot/ibot_vit-small-p16_16xb64-amp-coslr-800e_in1k_sbam.py',
        'VisionTransformer', ('mask_token', ), 2 * BATCH,  # 2 global crops
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH, in_channels=1, drop_path_rate=0),
            neck=dict(in_channels=32, hidden_channels=64,
                      bottleneck_channels=16, out_channels=64,
                      patch_out_channels=64),
            head=dict(out_channels=64, patch_out_channels=64,
                      num_local_crops=2)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=MULTI_VIEW)),
            optim_wrapper=dict(type='iBOTOptimWrapper',
                               _delete_=True,
                               optimizer=dict(type='AdamW', lr=1e-3),
                               clip_grad=dict(type='per_param', max_norm=3.),
                               freeze_last_layer_epochs=1,
                               paramwise_cfg=dict(custom_keys=dict(
                                   last_layer=dict(last_layer=True)))))),
]


def tiny_config(method: Method, work_dir: str) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, method.config))
    # deep copies: merging pops the `_delete_` keys
    cfg.merge_from_dict(copy.deepcopy(dict(TINY_RUN, work_dir=work_dir)))
    cfg.merge_from_dict(copy.deepcopy(method.tiny))
    strip_collate_scope(cfg)
    return cfg


@pytest.fixture(scope='module', params=METHODS, ids=lambda m: m.name)
def trained(request, tmp_path_factory, monkeypatch_module, fashion_mnist):
    """``(method, runner)`` after two training iterations."""
    from mmengine.runner import Runner
    method = request.param
    monkeypatch_module.chdir(ROOT)  # the config's relative data_root
    work_dir = str(tmp_path_factory.mktemp(method.name))
    runner = Runner.from_cfg(tiny_config(method, work_dir))
    runner.train()
    return method, runner


@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_trains_two_iterations(trained):
    _, runner = trained
    assert runner.iter == 2
    assert osp.isfile(osp.join(runner.work_dir, 'epoch_1.pth'))


def test_sbam_hook_logs_and_draws(trained):
    """SBAMHook finds the masker wherever the method keeps it."""
    _, runner = trained
    hub = runner.message_hub
    stats = hub.get_scalar('train/sbam/ratio_mean').current()
    assert 0 < stats < 1
    assert hub.get_scalar('train/sbam/enabled').current() == 1.0
    pictures = glob.glob(osp.join(runner.log_dir, 'vis_data', 'vis_image',
                                  'sbam_masks_*.png'))
    assert len(pictures) == 2


def test_mask_conventions(trained):
    """(B, L) float, 0/1, exactly L - int(L (1 - r_b)) masked per image."""
    method, runner = trained
    maskers = [m for m in runner.model.modules()
               if isinstance(m, SalienceMasker)]
    assert maskers
    for masker in maskers:
        record = masker.last_masking
        mask = record.mask
        assert mask.shape == (method.masked_rows, NUM_TOKENS)
        assert mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        visible = torch.floor(NUM_TOKENS * (1 - record.ratio.double()))
        assert torch.equal(mask.sum(1).long(), NUM_TOKENS - visible.long())


def test_masked_tokens_are_more_salient(trained):
    _, runner = trained
    for masker in runner.model.modules():
        if isinstance(masker, SalienceMasker):
            record = masker.last_masking
            stats = masking_statistics(record.salience, record.mask)
            assert stats['salience_masked'] > stats['salience_visible']


def test_checkpoint_loads_into_the_stock_class(trained):
    method, runner = trained
    cfg = runner.cfg.model.backbone.to_dict()
    cfg['type'] = method.stock_type
    stock = MODELS.build(cfg)
    assert type(stock).__name__ == method.stock_type
    state = torch.load(osp.join(runner.work_dir, 'epoch_1.pth'),
                       map_location='cpu')['state_dict']
    backbone = {k[len('backbone.'):]: v for k, v in state.items()
                if k.startswith('backbone.')}
    for key in method.extra_keys:
        del backbone[key]
    stock.load_state_dict(backbone, strict=True)
    trained_bb = runner.model.backbone.state_dict()
    assert all(torch.equal(trained_bb[k], v)
               for k, v in stock.state_dict().items())
