"""The shipped configs: what they change against MMPretrain's, and that
they build."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

import mmsbam  # noqa: F401
from mmpretrain.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                           recursive=True))


def stock_config(rel_path: str) -> Config:
    """One of MMPretrain's own configs, as ``mmpretrain::rel_path``."""
    import mmpretrain
    return Config.fromfile(
        osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs',
                 rel_path))


def unscoped(value):
    """``value`` without the ``_scope_`` keys that ``mmpretrain::``
    inheritance writes into every dict."""
    if isinstance(value, dict):
        return {k: unscoped(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(unscoped(v) for v in value)
    return value


def flatten(d, prefix=''):
    """{'a.b': value} view of nested dicts, ``_scope_`` keys dropped."""
    out = {}
    for k, v in unscoped(d).items():
        if isinstance(v, dict):
            out.update(flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def test_every_config_loads_and_imports_mmsbam():
    assert len(CONFIGS) >= 14
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.custom_imports['imports'] == ['mmsbam'], path


@pytest.mark.parametrize('ours,stock', [
    ('mae_vit-b_sbam.py', 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'),
    ('mae_vit-b_sbam_400e.py',
     'mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'),
    ('mae_vit-b_sbam_800e.py',
     'mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py'),
    ('mae_vit-l_sbam_400e.py',
     'mae/mae_vit-large-p16_8xb512-amp-coslr-400e_in1k.py'),
    ('mae_vit-l_sbam_800e.py',
     'mae/mae_vit-large-p16_8xb512-amp-coslr-800e_in1k.py'),
])
def test_pretrain_config_changes_only_import_and_masking(ours, stock):
    """The one-line switch: nothing else differs from MMPretrain's config
    but the import and the collate_fn stack fix."""
    a = flatten(Config.fromfile(osp.join(ROOT, 'configs', ours)).to_dict())
    b = flatten(stock_config(stock).to_dict())
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed == {
        'model.backbone.type', 'custom_imports.imports',
        'custom_imports.allow_failed_imports'
    }, changed
    assert a['model.backbone.type'] == 'SBAMViT'


@pytest.mark.parametrize('mode', ['sample', 'batch'])
@pytest.mark.parametrize('epochs', [400, 800])
def test_amr_configs(mode, epochs):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', f'mae_vit-b_sbam-amr-{mode}_{epochs}e.py'))
    assert cfg.model.backbone.type == 'SBAMViT'
    assert cfg.model.backbone.amr.mode == mode
    assert cfg.train_cfg.max_epochs == epochs


def test_vit_b_sbam_builds_with_stock_keys():
    """SBAM ViT-B has exactly the parameters of stock MAE ViT-B."""
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    ours = Config.fromfile(osp.join(ROOT, 'configs', 'mae_vit-b_sbam.py'))
    stock = stock_config(
        'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
    a = MODELS.build(ours.model).state_dict()
    b = MODELS.build(stock.model).state_dict()
    assert {k: v.shape for k, v in a.items()} == \
        {k: v.shape for k, v in b.items()}


@pytest.mark.parametrize('name', [
    'benchmarks/vit-b_sbam_linear-90e_in1k.py',
    'benchmarks/vit-b_sbam_ft-100e_in1k.py',
    'benchmarks/vit-l_sbam_linear-90e_in1k.py',
    'benchmarks/vit-l_sbam_ft-50e_in1k.py',
])
def test_downstream_configs_take_a_pretrained_backbone(name):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', name))
    assert cfg.model.backbone.type == 'VisionTransformer'
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
