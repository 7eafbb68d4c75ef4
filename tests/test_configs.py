"""The shipped configs: what they change against MMPretrain's, and that
they build.

Naming rule (docs/layout.md): ``configs/<method>/<path>/<name>_sbam<suffix>.py``
inherits MMPretrain's ``<method>/<path>/<name>.py``. The stock base of every
config is derived from its file name here, so a new config needs no entry
in this file. For a method MMPretrain lacks (iBoT, CMAE), ``<name>.py`` is
our own config in the same folder, and the SBAM twin may change only its
masking keys (iBoT: the mask generator; CMAE: the backbone type).
``configs/fmnist`` (the CPU demo) and ``configs/cluttered`` (the small-scale
protocol study) are not stock-derived method folders
and are left out of the rule.
"""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

import mmsbam  # noqa: F401
from mmpretrain.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(ROOT, 'configs')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '**', '*.py'),
                           recursive=True))
HEADLINE = 'mae_vit-b_sbam.py'
# folders under configs/ that do not follow the naming rule
NOT_STOCK_DERIVED = ('fmnist', 'cluttered')
# methods MMPretrain 1.2.0 lacks: the base is our own config; the SBAM
# twin changes only these keys (a prefix ending in '.' covers a subtree),
# and sets the type key to this value
OWN_BASE_MASKING = {
    'ibot': ('model.mask_generator.', 'model.mask_generator.type',
             'iBOTSalienceMaskGenerator'),
    'cmae': ('model.backbone.type', 'model.backbone.type', 'SBAMCMAEViT'),
    'bootmae': ('model.backbone.type', 'model.backbone.type',
                'SBAMBootMAEViT'),
}
OWN_BASE = tuple(OWN_BASE_MASKING)
IMPORT_KEYS = {'custom_imports.imports', 'custom_imports.allow_failed_imports'}
AMR_KEYS = {
    'model.backbone.amr.ratio_var', 'model.backbone.amr.delta',
    'model.backbone.amr.mode'
}
#: Methods whose SBAM version switches more than the backbone (the method's
#: config README says why): CAE's algorithm marks which copy of the backbone
#: is the momentum teacher, and its neck takes AMR's per-batch counts.
MORE_SWITCHES = {
    'cae': {'model.type': 'SBAMCAE', 'model.neck.type': 'SBAMCAENeck'},
}


def stock_config_dir() -> str:
    import mmpretrain
    return osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')


def rel(path: str) -> str:
    return osp.relpath(path, CONFIG_DIR).replace(osp.sep, '/')


def method_configs():
    """Every SBAM config of a method folder (``configs/<method>/**``);
    in ``OWN_BASE`` folders only the ``_sbam`` twins."""
    return [
        rel(p) for p in CONFIGS
        if '/' in rel(p) and rel(p).split('/')[0] not in NOT_STOCK_DERIVED
        and (rel(p).split('/')[0] not in OWN_BASE or '_sbam' in rel(p))
    ]


def own_base(rel_path: str) -> bool:
    return rel_path.split('/')[0] in OWN_BASE


def split_name(rel_path: str):
    """``mae/benchmarks/x_sbam-amr-batch.py`` ->
    (``mae/benchmarks/x.py``, ``-amr-batch``)."""
    folder, base = osp.split(rel_path)
    match = re.fullmatch(r'(?P<name>.+)_sbam(?P<suffix>[^_]*)\.py', base)
    assert match, f'{rel_path} does not follow <name>_sbam<suffix>.py'
    return (f"{folder}/{match['name']}.py", match['suffix'])


def stock_path(rel_path: str) -> str:
    root = CONFIG_DIR if own_base(rel_path) else stock_config_dir()
    return osp.join(root, split_name(rel_path)[0])


def stock_config(rel_path: str) -> Config:
    """One of MMPretrain's own configs, as ``mmpretrain::rel_path`` (for
    ``OWN_BASE`` methods our base config)."""
    root = CONFIG_DIR if own_base(rel_path) else stock_config_dir()
    return Config.fromfile(osp.join(root, rel_path))


def ours(rel_path: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, rel_path))


def is_benchmark(rel_path: str) -> bool:
    return 'benchmarks' in rel_path.split('/')[:-1]


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


METHOD_CONFIGS = method_configs()
PRETRAIN_CONFIGS = [p for p in METHOD_CONFIGS if not is_benchmark(p)]
BENCHMARK_CONFIGS = [p for p in METHOD_CONFIGS if is_benchmark(p)]
AMR_CONFIGS = [p for p in PRETRAIN_CONFIGS if '-amr-' in split_name(p)[1]]


def test_every_config_loads_and_imports_mmsbam():
    assert len(CONFIGS) >= 24
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.custom_imports['imports'] == ['mmsbam'], path


def test_config_folders_are_found():
    """The globs below see the shipped configs (a moved folder would
    otherwise turn the parametrized tests into no tests)."""
    assert len(PRETRAIN_CONFIGS) >= 11, PRETRAIN_CONFIGS
    assert sum(own_base(p) for p in PRETRAIN_CONFIGS) >= 4
    assert len(BENCHMARK_CONFIGS) >= 4, BENCHMARK_CONFIGS
    assert {split_name(p)[1] for p in AMR_CONFIGS} == \
        {'-amr-sample', '-amr-batch'}


@pytest.mark.parametrize('name', METHOD_CONFIGS)
def test_stock_base_exists(name):
    """``configs/<method>/<path>/<name>_sbam<suffix>.py`` has the stock
    config ``<method>/<path>/<name>.py`` in MMPretrain."""
    assert osp.isfile(stock_path(name)), \
        f'{name}: no stock config {split_name(name)[0]} in MMPretrain'


@pytest.mark.parametrize('name', PRETRAIN_CONFIGS)
def test_pretrain_config_changes_only_import_and_masking(name):
    """The one-line switch: nothing else differs from MMPretrain's config
    but the import, the backbone type (plus the types of
    ``MORE_SWITCHES``) and, for ``-amr-`` configs, the AMR settings (the
    collate_fn stack fix equals the stock collate_fn once ``_scope_`` is
    dropped)."""
    stock_rel, suffix = split_name(name)
    a = flatten(ours(name).to_dict())
    b = flatten(stock_config(stock_rel).to_dict())
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    if own_base(name):  # the method's masking keys only
        prefix, type_key, sbam = OWN_BASE_MASKING[name.split('/')[0]]
        assert type_key in changed, changed
        assert all(k == prefix or prefix.endswith('.') and k.startswith(
            prefix) for k in changed), changed
        assert a[type_key] == sbam
        return
    more = MORE_SWITCHES.get(name.split('/')[0], {})
    expected = IMPORT_KEYS | {'model.backbone.type'} | set(more)
    if '-amr-' in suffix:
        expected |= AMR_KEYS
    assert changed == expected, changed
    assert all(a[k] == v for k, v in more.items()), more
    assert a['model.backbone.type'] == sbam_type(b['model.backbone.type'])


def sbam_type(stock_type: str) -> str:
    """The one-line rule: ``SBAM`` + the stock class name; MAE's
    ``MAEViT`` keeps its public name ``SBAMViT``."""
    return 'SBAMViT' if stock_type == 'MAEViT' else 'SBAM' + stock_type


@pytest.mark.parametrize('name', BENCHMARK_CONFIGS)
def test_benchmark_config_changes_only_import(name):
    """Downstream configs are MMPretrain's benchmarks unchanged but for the
    import (checkpoint loading under torch >= 2.6)."""
    a = flatten(ours(name).to_dict())
    b = flatten(stock_config(split_name(name)[0]).to_dict())
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed == IMPORT_KEYS, changed


@pytest.mark.parametrize('name', AMR_CONFIGS)
def test_amr_configs(name):
    """Mode from the file name's suffix, epochs from the stock schedule's
    ``<N>e`` in the name."""
    mode = split_name(name)[1].split('-amr-')[1]
    epochs = int(re.search(r'-(\d+)e_', name).group(1))
    cfg = ours(name)
    assert cfg.model.backbone.type == 'SBAMViT'
    assert cfg.model.backbone.amr.mode == mode
    assert cfg.train_cfg.max_epochs == epochs


def test_headline_config_is_its_mae_twin():
    """``configs/mae_vit-b_sbam.py`` is an alias of the 300-epoch MAE
    config."""
    twin = 'mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sbam.py'
    assert twin in PRETRAIN_CONFIGS
    assert flatten(ours(HEADLINE).to_dict()) == flatten(ours(twin).to_dict())


def test_vit_b_sbam_builds_with_stock_keys():
    """SBAM ViT-B has exactly the parameters of stock MAE ViT-B."""
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    a = MODELS.build(ours(HEADLINE).model).state_dict()
    b = MODELS.build(
        stock_config('mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
        .model).state_dict()
    assert {k: v.shape for k, v in a.items()} == \
        {k: v.shape for k, v in b.items()}


@pytest.mark.parametrize('name', BENCHMARK_CONFIGS)
def test_downstream_configs_take_a_pretrained_backbone(name):
    cfg = ours(name)
    assert not cfg.model.backbone.type.startswith('SBAM')  # a stock class
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
