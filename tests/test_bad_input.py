"""Bad input, tried as a new user would: each case gets an error that names
the problem and the fix, or a documented safe behaviour (docs/reproducibility.md,
"What happens with bad input"). In-process where possible; three tool runs.
"""
import copy
import math
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner

from mmpretrain.registry import MODELS

from conftest import ROOT, _run_tool
from mmsbam.compat import atomic_checkpoint_saves
from mmsbam.engine.hooks import NonFiniteLossHook
from mmsbam.engine.launch import preflight
from mmsbam.engine.preflight import (check_checkpoint_compatible,
                                     check_dataset_built)

PRETRAIN = osp.join(ROOT,
                    'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py')
LINEAR = osp.join(ROOT, 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py')
AMR = dict(ratio_var=0.1, delta=0.2)


def run_train(*args):
    proc = _run_tool('tools/train.py', *args, check=False)
    return proc.returncode, proc.stdout


def _images(n=2, channels=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g)


# ------------------------------------------------ 1. invalid config values
@pytest.mark.parametrize('option, message', [
    ('model.backbone.mask_ratio=1.5',
     r'ValueError: mask_ratio must be in \(0, 1\), got 1.5'),
    ('model.backbone.amr.mode=foo',
     r"ValueError: amr.mode must be one of \('sample', 'batch'\), got 'foo'"),
])
def test_bad_config_value_through_train_tool(tmp_path, option, message):
    """The ValueError is the last line of the output, the exit status 1."""
    rc, out = run_train(PRETRAIN, '--work-dir', str(tmp_path),
                        '--cfg-options', option)
    assert rc != 0
    assert re.search(message, out.strip().splitlines()[-1]), out[-2000:]
    assert not any(f.endswith('.pth') for f in os.listdir(tmp_path))


# ------------------------------------------------- 2. image size vs patches
@pytest.mark.parametrize('size, extra', [
    (28, ''), (2, r'\(smaller than one patch\)'),
    (30, r'\(not a multiple of the patch size\)'),
])
def test_wrong_image_size_names_sizes_and_fix(build_backbone, size, extra):
    backbone = build_backbone()  # img_size 32, patch 4, 1 channel
    with pytest.raises(ValueError, match=(
            rf'{size}x{size} images {extra}.*img_size=\(32, 32\), '
            r'patch_size=4.*Resize or crop to 32x32 in the train pipeline')):
        backbone(_images(size=size))


def test_unmasked_forward_accepts_other_sizes(build_backbone):
    """Feature extraction interpolates the position embedding (stock ViT)."""
    backbone = build_backbone(out_type='cls_token')
    out = backbone(_images(size=48), mask=None)
    assert torch.isfinite(out[0]).all()


# ---------------------------------------------------------- 3. channels
def test_rgb_into_grayscale_model(build_backbone):
    with pytest.raises(ValueError, match=(
            r"3-channel images but patch_cfg.in_channels=1.*color_type="
            r"'grayscale'.*to_rgb only reorders")):
        build_backbone(in_channels=1)(_images(channels=3))


@pytest.mark.parametrize('mask', [True, None])
def test_grayscale_into_rgb_model(build_backbone, mask):
    with pytest.raises(ValueError, match=(
            r'1-channel images but patch_cfg.in_channels=3.*convert the '
            r'images to RGB.*patch_cfg.in_channels=1')):
        build_backbone(in_channels=3)(_images(channels=1), mask=mask)


def test_grayscale_through_rgb_preprocessor_is_broadcast():
    """Documented: a 3-value mean/std broadcasts a 1-channel image to 3
    identical channels, so such a model trains on replicated gray."""
    pre = MODELS.build(dict(type='SelfSupDataPreprocessor',
                            mean=[1., 2., 3.], std=[1., 1., 1.],
                            to_rgb=False))
    out = pre(dict(inputs=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
                   data_samples=None))
    assert out['inputs'].shape == (2, 3, 4, 4)


# ------------------------------------------------------ 4. checkpoints
def _cfg(path=PRETRAIN, **backbone):
    cfg = Config.fromfile(path)
    cfg.work_dir = '/nonexistent-work-dir'
    for k, v in backbone.items():
        cfg.model.backbone[k] = v
    return cfg


def _save_model(cfg, path):
    model = MODELS.build(copy.deepcopy(cfg.model))
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return model


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A checkpoint of the fmnist model and one of a wider ViT (128-d,
    another architecture: the ViT-L-into-ViT-B case at toy size)."""
    d = tmp_path_factory.mktemp('ckpts')
    same, wide = str(d / 'same.pth'), str(d / 'wide.pth')
    _save_model(_cfg(), same)
    wide_arch = dict(embed_dims=128, num_layers=4, num_heads=4,
                     feedforward_channels=256)
    cfg = _cfg(arch=wide_arch)
    cfg.model.neck.embed_dim = 128
    _save_model(cfg, wide)
    return dict(same=same, wide=wide)


def test_matching_checkpoint_passes(checkpoints):
    for key in ('load_from', 'resume'):
        cfg = _cfg()
        cfg.load_from, cfg.resume = checkpoints['same'], key == 'resume'
        check_checkpoint_compatible(cfg)


@pytest.mark.parametrize('resume', [False, True])
def test_other_architecture_checkpoint_is_refused(checkpoints, resume):
    cfg = _cfg()
    cfg.load_from, cfg.resume = checkpoints['wide'], resume
    what = 'resume' if resume else 'load_from'
    with pytest.raises(RuntimeError, match=(
            rf'(?s){what}: checkpoint .*wide.pth does not fit.*'
            r'backbone\.cls_token: checkpoint \(1, 1, 128\), model '
            r'\(1, 1, 64\).*another architecture')):
        preflight(cfg)


def test_truncated_checkpoint_is_named(checkpoints, tmp_path):
    broken = str(tmp_path / 'epoch_3.pth')
    with open(checkpoints['same'], 'rb') as src, open(broken, 'wb') as dst:
        dst.write(src.read()[:1000])
    cfg = _cfg()
    cfg.load_from = broken
    with pytest.raises(RuntimeError, match='cannot read checkpoint .*'
                       'epoch_3.pth.*truncated'):
        check_checkpoint_compatible(cfg)


def test_pretrained_init_other_architecture(checkpoints):
    """MMEngine alone only warns and keeps random weights (what the user
    saw before); tools/train.py refuses it."""
    cfg = _cfg(LINEAR)
    cfg.model.backbone.init_cfg.checkpoint = checkpoints['wide']
    model = MODELS.build(copy.deepcopy(cfg.model))
    logger = MMLogger.get_current_instance()
    records = []
    handler = type('H', (__import__('logging').Handler, ), dict(
        emit=lambda self, r: records.append(r.getMessage())))()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    assert any('size mismatch' in r for r in records)
    assert model.backbone.cls_token.shape == (1, 1, 64)  # random, not loaded
    with pytest.raises(RuntimeError, match=(
            r'model.backbone.init_cfg \(Pretrained\): checkpoint .*wide.pth '
            r'does not fit')):
        check_checkpoint_compatible(cfg)
    cfg.model.backbone.init_cfg.checkpoint = checkpoints['same']
    check_checkpoint_compatible(cfg)  # pre-training ckpt into linear probe


def test_test_tool_checkpoint_must_match_exactly(checkpoints):
    """tools/test.py: a pre-training checkpoint has no classifier head."""
    cfg = _cfg(LINEAR)
    cfg.load_from = cfg.model.backbone.init_cfg.checkpoint = \
        checkpoints['same']
    check_checkpoint_compatible(cfg)  # training: head missing is fine
    cfg.model.backbone.init_cfg.checkpoint = 'missing.pth'  # not run by test
    with pytest.raises(RuntimeError,
                       match=r'head\.layers\.head\.weight: missing'):
        check_checkpoint_compatible(cfg, for_test=True)


# ---------------------------------------------------------- 5. datasets
class _LazyRunner:
    """Stands in for the Runner: builds the dataloader on access."""

    def __init__(self, dataset):
        self.cfg = Config(dict(train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset)))

    @property
    def train_dataloader(self):
        return Runner.build_dataloader(copy.deepcopy(
            self.cfg.train_dataloader))


def test_empty_custom_dataset_folder(tmp_path):
    (tmp_path / 'train').mkdir()
    runner = _LazyRunner(dict(type='mmpretrain.CustomDataset',
                              data_root=str(tmp_path), data_prefix='train',
                              pipeline=[]))
    with pytest.raises(RuntimeError, match=(
            r"train_dataloader.dataset \(mmpretrain.CustomDataset "
            rf"data_root='{tmp_path}' data_prefix='train'\) could not be "
            r'built: Found 0 files')):
        check_dataset_built(runner)


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_empty_subset_is_named_empty(tmp_path):
    """MMEngine's own message for an empty dataset is 'need at least one
    array to concatenate'."""
    runner = _LazyRunner(dict(type='mmpretrain.FashionMNIST',
                              data_root=osp.join(ROOT, 'data/fashion_mnist'),
                              download=False, indices=0, pipeline=[]))
    with pytest.raises(RuntimeError, match='The dataset is empty'):
        check_dataset_built(runner)


def test_empty_fashion_mnist_root_through_train_tool(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    rc, out = run_train(PRETRAIN, '--work-dir', str(tmp_path / 'wd'),
                        '--cfg-options',
                        f'train_dataloader.dataset.data_root={empty}')
    assert rc != 0
    last = out.strip().splitlines()[-1]
    assert 'train_dataloader.dataset (FashionMNIST' in last, out[-2000:]
    assert f'Cannot find FashionMNIST dataset in {empty}' in last
    assert not osp.exists(tmp_path / 'wd' / 'last_checkpoint')


# ------------------------------------------------------ 6. NaN / Inf pixels
@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_non_finite_pixels_raise(build_mae, value):
    model = build_mae()
    model.train()
    x = _images(2)
    x[1, 0, 3, 5] = value
    with pytest.raises(ValueError, match=r'1 NaN/Inf pixel values.*std of '
                       r'0.*check_finite=False'):
        model.loss(x, [None] * 2)


def test_check_finite_off_gives_nan_loss_not_a_crash(build_mae):
    """With the check off, the salience stays NaN-safe (masking proceeds)
    and the loss is NaN: NonFiniteLossHook is what stops training then."""
    model = build_mae(check_finite=False)
    model.train()
    x = _images(2)
    x[0, 0, 0, 0] = float('nan')
    loss = model.loss(x, [None] * 2)['loss']
    assert math.isnan(float(loss))
    mask = model.backbone.masker.last_masking.mask
    assert mask.sum(1).tolist() == [48.0, 48.0]


class _FakeRunner:
    iter, epoch = 6, 2

    def __init__(self, loss):
        self.message_hub = MessageHub.get_instance(f'bad-input-{loss}')
        self.message_hub.update_scalar('train/loss', loss)


def test_non_finite_loss_hook_stops_training():
    hook = NonFiniteLossHook()
    hook.after_train_iter(_FakeRunner(1.0), 0, outputs=dict(
        loss=torch.tensor(1.0)))
    with pytest.raises(FloatingPointError, match=(
            r'loss is nan at iteration 7 \(epoch 3\).*before saving a '
            r'checkpoint.*--resume')):
        hook.after_train_iter(_FakeRunner(float('nan')), 0, outputs=dict(
            loss=torch.tensor(float('nan'))))
    assert NonFiniteLossHook.priority == 'ABOVE_NORMAL'  # < CheckpointHook
    patient = NonFiniteLossHook(patience=2)
    patient.after_train_iter(_FakeRunner(float('inf')), 0,
                             outputs=dict(loss=torch.tensor(0.)))
    with pytest.raises(FloatingPointError):
        patient.after_train_iter(_FakeRunner(float('inf')), 0,
                                 outputs=dict(loss=torch.tensor(0.)))


def test_train_tool_adds_loss_hook_once():
    cfg = _cfg()
    preflight(cfg)
    preflight(cfg)
    assert [h['type'] for h in cfg.custom_hooks].count(
        'NonFiniteLossHook') == 1


def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    """MMEngine writes straight to the final path: a failure mid-write
    truncates it. With atomic_checkpoint_saves the old file survives."""
    import mmengine.runner.runner as runner_module
    from mmengine.runner.checkpoint import save_checkpoint as plain_save
    target = str(tmp_path / 'epoch_2.pth')
    good = dict(state_dict=dict(w=torch.arange(1000.)))
    plain_save(good, target)
    good_bytes = open(target, 'rb').read()

    def dying_put(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(LocalBackend, 'put', dying_put)
    new = dict(state_dict=dict(w=torch.zeros(1000)))
    with pytest.raises(OSError):
        plain_save(new, target)  # stock MMEngine: truncated file
    assert len(open(target, 'rb').read()) < len(good_bytes)

    with open(target, 'wb') as f:
        f.write(good_bytes)
    atomic_checkpoint_saves()
    atomic_checkpoint_saves()  # idempotent
    with pytest.raises(OSError, match='No space left'):
        runner_module.save_checkpoint(new, target)
    assert open(target, 'rb').read() == good_bytes
    assert os.listdir(tmp_path) == ['epoch_2.pth']  # no temporary left
    monkeypatch.undo()
    runner_module.save_checkpoint(new, target)
    assert torch.equal(torch.load(target)['state_dict']['w'],
                       torch.zeros(1000))


# ------------------------------------------------------------ bf16 autocast
@pytest.mark.parametrize('kwargs', [
    dict(), dict(amr=dict(AMR, mode='sample')),
    dict(amr=dict(AMR, mode='batch')), dict(salience_source='attention')
], ids=['sbm', 'amr-sample', 'amr-batch', 'attention'])
def test_bf16_autocast_forward_backward_finite(build_mae, kwargs):
    model = build_mae(**kwargs)
    model.train()
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model.loss(_images(4, seed=1) * 3, [None] * 4)['loss']
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
