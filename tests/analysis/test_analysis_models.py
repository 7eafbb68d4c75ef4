"""mmsbam.analysis.models: configs, seeded building and weight loading."""
import pytest
import torch

from mmsbam.analysis.models import (build_model, load_config, load_weights,
                                    preprocessor_mean_std)


def _save(state, path, prefix=''):
    torch.save({'meta': {}, 'state_dict': {prefix + k: v
                                           for k, v in state.items()}},
               path)
    return str(path)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) for k in sa)


def test_load_config_file_and_options(tmp_path):
    path = tmp_path / 'cfg.py'
    path.write_text("model = dict(type='MAE', backbone=dict(mask_ratio=0.75))"
                    "\ndata_preprocessor = dict(mean=[1.0], std=[2.0])\n")
    cfg = load_config(str(path), {'model.backbone.mask_ratio': 0.5})
    assert cfg.model.backbone.mask_ratio == 0.5
    assert preprocessor_mean_std(cfg) == ([1.0], [2.0])
    cfg.data_preprocessor = None
    assert preprocessor_mean_std(cfg)[0] == [123.675, 116.28, 103.53]


def test_load_config_of_a_package_path():
    cfg = load_config(
        'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py')
    assert cfg.model.backbone.type == 'MAEViT'


def test_build_model_is_seeded_and_in_eval_mode(backbone_cfg):
    a = build_model(backbone_cfg(), seed=3)
    b = build_model(backbone_cfg(), seed=3)
    c = build_model(backbone_cfg(), seed=4)
    assert not a.training
    assert _same(a, b) and not _same(a, c)


def test_load_whole_model_checkpoint(build_mae, tmp_path):
    source, target = build_mae(seed=1), build_mae(seed=0)
    path = _save(source.state_dict(), tmp_path / 'whole.pth', 'module.')
    info = load_weights(target, path, strict=True)
    assert _same(source, target)
    assert info['kind'] == 'model' and info['has_decoder']
    assert info['loaded'] == info['total'] and not info['missing']


def test_load_bare_backbone_checkpoint_into_whole_model(build_mae, tmp_path):
    source, target = build_mae(seed=1), build_mae(seed=0)
    neck = {k: v.clone() for k, v in target.neck.state_dict().items()}
    path = _save(source.backbone.state_dict(), tmp_path / 'backbone.pth')
    info = load_weights(target, path, strict=True)
    assert _same(source.backbone, target.backbone)
    assert all(torch.equal(v, target.neck.state_dict()[k])
               for k, v in neck.items())  # left as it was
    assert info['kind'] == 'backbone' and not info['has_decoder']
    assert info['missing'] and all(not k.startswith('backbone.')
                                   for k in info['missing'])


def test_load_whole_model_checkpoint_into_bare_backbone(
        build_mae, build_backbone, tmp_path):
    source, target = build_mae(seed=1), build_backbone(seed=0)
    path = _save(source.state_dict(), tmp_path / 'whole.pth')
    info = load_weights(target, path)
    assert _same(source.backbone, target)
    assert info['kind'] == 'model' and info['has_decoder']
    assert info['loaded'] == info['total']


def test_checkpoint_that_does_not_fit_is_refused(build_mae, tmp_path):
    target = build_mae(seed=0)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    rgb = _save(build_mae(in_channels=3).state_dict(), tmp_path / 'rgb.pth')
    with pytest.raises(RuntimeError, match='shape mismatches'):
        load_weights(target, rgb)
    other = _save({'fc.weight': torch.zeros(2, 2)}, tmp_path / 'other.pth')
    with pytest.raises(RuntimeError, match='0 of its'):
        load_weights(target, other)
    state = target.backbone.state_dict()
    state.pop('pos_embed')
    partial = _save(state, tmp_path / 'partial.pth')
    load_weights(target, partial)  # lenient by default
    with pytest.raises(RuntimeError, match='pos_embed'):
        load_weights(target, partial, strict=True)
    assert all(torch.equal(v, target.state_dict()[k])
               for k, v in before.items())  # nothing loaded when refused
