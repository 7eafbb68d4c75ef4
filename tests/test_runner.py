"""End-to-end through MMEngine's Runner and the shipped tools.

The tools run as subprocesses from the repository root, exactly as a user
runs them, on a 32-image slice of Fashion-MNIST (``tools/install.sh``
unpacks it into ``data/fashion_mnist``): 2 iterations per epoch.
"""
import json
import os.path as osp
import re
import sys

import pytest
import torch

from conftest import _run_tool as run_tool

PRETRAIN = 'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
LINEAR = 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py'
TINY_DATA = [
    'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=16',
    'default_hooks.logger.interval=1'
]



pytestmark = pytest.mark.usefixtures('fashion_mnist')


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    """Two SBAM iterations with tools/train.py; returns the work dir."""
    work_dir = str(tmp_path_factory.mktemp('sbam_pretrain'))
    run_tool('tools/train.py', PRETRAIN, '--work-dir', work_dir,
             '--cfg-options', 'train_cfg.max_epochs=1', *TINY_DATA)
    return work_dir


def load(path):
    return torch.load(path, map_location='cpu')  # weights_only=True default


def test_train_two_iterations_writes_checkpoint(pretrained):
    ckpt = load(osp.join(pretrained, 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    assert 'SBAMViT' in ckpt['meta']['cfg']
    assert {'state_dict', 'optimizer', 'message_hub'} <= set(ckpt)
    assert all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
               if v.is_floating_point())


def test_resume_continues_from_checkpoint(pretrained, tmp_path):
    work_dir = str(tmp_path)
    src = osp.join(pretrained, 'epoch_1.pth')
    out = run_tool('tools/train.py', PRETRAIN, '--work-dir', work_dir,
                   '--resume', src, '--cfg-options', 'train_cfg.max_epochs=2',
                   *TINY_DATA).stdout
    assert re.search(r'resumed epoch: 1, iter: 2', out), out[-3000:]
    ckpt = load(osp.join(work_dir, 'epoch_2.pth'))
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 4
    # the optimiser state was restored, not restarted: AdamW step count
    steps = [s['step'] for s in ckpt['optimizer']['state'].values()]
    assert float(max(steps)) == 4


def test_load_from_loads_weights(pretrained, tmp_path):
    src = osp.join(pretrained, 'epoch_1.pth')
    out = run_tool('tools/train.py', PRETRAIN, '--work-dir', str(tmp_path),
                   '--cfg-options', 'train_cfg.max_epochs=1', f'load_from={src}',
                   *TINY_DATA).stdout
    assert f'Load checkpoint from {src}' in out


def test_sbam_checkpoint_loads_into_stock_vit(pretrained):
    from mmpretrain.models import VisionTransformer
    state = load(osp.join(pretrained, 'epoch_1.pth'))['state_dict']
    backbone = {k[len('backbone.'):]: v for k, v in state.items()
                if k.startswith('backbone.')}
    vit = VisionTransformer(
        arch=dict(embed_dims=64, num_layers=4, num_heads=4,
                  feedforward_channels=256),
        img_size=28, patch_size=4, patch_cfg=dict(in_channels=1))
    result = vit.load_state_dict(backbone, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(vit.pos_embed, backbone['pos_embed'])


def test_pretrained_init_linear_probe_and_test_tool(pretrained, tmp_path):
    """``init_cfg=Pretrained`` with an SBAM checkpoint, then tools/test.py."""
    src = osp.join(pretrained, 'epoch_1.pth')
    small = ['train_dataloader.dataset.indices=32',
             'train_dataloader.batch_size=16',
             'val_dataloader.dataset.indices=50',
             'test_dataloader.dataset.indices=50']
    out = run_tool('tools/train.py', LINEAR, '--work-dir', str(tmp_path),
                   '--cfg-options', 'train_cfg.max_epochs=1',
                   f'model.backbone.init_cfg.checkpoint={src}', *small).stdout
    assert f'load backbone. in model from: {src}' in out
    assert 'missing keys' not in out and 'unexpected key' not in out
    result = osp.join(str(tmp_path), 'metrics.json')
    out = run_tool('tools/test.py', LINEAR, osp.join(str(tmp_path),
                                                     'epoch_1.pth'),
                   '--work-dir', str(tmp_path), '--cfg-options',
                   'test_dataloader.dataset.indices=50').stdout
    match = re.search(r'Epoch\(test\).*accuracy/top1: ([\d.]+)', out)
    assert match, out[-3000:]
    assert 0.0 <= float(match.group(1)) <= 100.0
    assert not osp.exists(result)


def test_knn_eval_prints_accuracy(pretrained, tmp_path):
    out_json = str(tmp_path / 'knn.json')
    out = run_tool('tools/analysis_tools/knn_eval.py', PRETRAIN,
                   osp.join(pretrained, 'epoch_1.pth'), '--k', '5',
                   '--out', out_json, '--cfg-options',
                   'train_dataloader.dataset.indices=100').stdout
    assert re.search(r'k-NN top-1 \(k=5.*\): [\d.]+%', out), out[-2000:]
    with open(out_json) as f:
        top1 = json.load(f)['top1']['5']
    assert 0.0 <= top1 <= 100.0


def test_amp_config_on_cpu_is_refused_with_the_fix(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('AmpOptimWrapper is valid with a GPU')
    proc = run_tool('tools/train.py', 'configs/mae_vit-b_sbam.py',
                    '--work-dir', str(tmp_path), check=False)
    assert proc.returncode != 0
    assert 'AmpOptimWrapper needs a GPU' in proc.stdout
    assert '--no-amp' in proc.stdout


def test_two_processes_on_cpu(tmp_path):
    """tools/dist_train.sh starts 2 gloo processes that train together."""
    work_dir = str(tmp_path)
    proc = run_tool('tools/dist_train.sh', PRETRAIN, '2', '--work-dir',
                    work_dir, '--cfg-options', 'train_cfg.max_epochs=1',
                    *TINY_DATA, env=dict(PYTHON=sys.executable, PORT='29533'))
    ckpt = load(osp.join(work_dir, 'epoch_1.pth'))
    # 32 images, 16 per process and step, 2 processes -> 1 iteration
    assert ckpt['meta']['iter'] == 1
    assert 'Distributed training: True' in proc.stdout


def test_knn_eval_pixel_reference(tmp_path):
    """``--pixels``: k-NN on raw pixels, no model, same output format."""
    out_json = str(tmp_path / 'pixels.json')
    out = run_tool('tools/analysis_tools/knn_eval.py', PRETRAIN, '--pixels',
                   '--k', '5', '--out', out_json, '--cfg-options',
                   'train_dataloader.dataset.indices=100').stdout
    assert re.search(r'k-NN top-1 \(k=5, T=0.07, pixels .*raw pixels',
                     out), out[-2000:]
    with open(out_json) as f:
        result = json.load(f)
    assert result['feature'] == 'pixels'
    assert 0.0 <= result['top1']['5'] <= 100.0
