"""iBOTNeck: iBoT's projection head (MLP -> L2 norm -> weight-normalised
prototypes), checked against direct float64 computations."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS
from mmsbam.models.ibot.ibot_neck import iBOTNeck

C, HIDDEN, BOTTLENECK, K, KP = 12, 24, 8, 10, 6
B, N = 3, 5


def _neck(**kwargs):
    cfg = dict(
        in_channels=C,
        hidden_channels=HIDDEN,
        bottleneck_channels=BOTTLENECK,
        out_channels=K,
        patch_out_channels=K)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return iBOTNeck(**cfg)


def _tokens(seed=1, batch=B, n=N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1 + n, C, generator=g)


def _reference(neck, x):
    """MLP (exact GELU) -> L2 normalisation -> g * v / ||v|| in float64,
    from the parameters, with no call into the neck's code."""
    linears = [m for m in neck.mlp if isinstance(m, nn.Linear)]
    h = x.double()
    for i, lin in enumerate(linears):
        h = h @ lin.weight.double().T + lin.bias.double()
        if i < len(linears) - 1:
            h = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))
    z = h / torch.sqrt((h**2).sum(-1, keepdim=True))

    def prototypes(layer):
        v = layer.weight.double()
        return layer.weight_g.double() * v / torch.sqrt(
            (v**2).sum(1, keepdim=True))

    patch_layer = neck.last_layer if neck.last_layer2 is None \
        else neck.last_layer2
    return (z[:, 0] @ prototypes(neck.last_layer).T,
            z[:, 1:] @ prototypes(patch_layer).T)


def test_registered_as_iBOTNeck_in_mmpretrain_models():
    neck = MODELS.build(
        dict(type='iBOTNeck', in_channels=C, hidden_channels=HIDDEN,
             bottleneck_channels=BOTTLENECK, out_channels=K,
             patch_out_channels=K))
    assert isinstance(neck, iBOTNeck)


@pytest.mark.parametrize('shared', [True, False])
def test_forward_matches_direct_float64_computation(shared):
    neck = _neck(shared_last_layer=shared,
                 patch_out_channels=K if shared else KP)
    x = _tokens()
    cls, patch = neck(x)
    ref_cls, ref_patch = _reference(neck, x)
    assert cls.shape == (B, K)
    assert patch.shape == (B, N, K if shared else KP)
    torch.testing.assert_close(cls.double(), ref_cls, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(patch.double(), ref_patch, rtol=1e-5,
                               atol=1e-6)


def test_local_crops_return_no_patch_logits_and_do_no_work_on_patches():
    neck = _neck()
    x = _tokens()
    seen = []
    neck.mlp[0].register_forward_hook(
        lambda mod, inputs, out: seen.append(tuple(inputs[0].shape)))
    cls, patch = neck(x, patch_tokens=False)
    assert patch is None
    assert seen == [(B, 1, C)]  # only the class tokens reach the MLP
    torch.testing.assert_close(cls, neck(x)[0])


def test_shared_last_layer_is_one_prototype_layer_without_duplicate_keys():
    neck = _neck(shared_last_layer=True)
    assert neck.last_layer2 is None
    keys = list(neck.state_dict())
    assert not any('last_layer2' in key for key in keys)
    assert len(keys) == len(set(keys))
    x = _tokens()
    _, patch = neck(x)
    ref = neck.last_layer(F.normalize(neck.mlp(x[:, 1:]), dim=-1))
    torch.testing.assert_close(patch, ref)


def test_separate_last_layer2_has_patch_out_channels_prototypes():
    neck = _neck(shared_last_layer=False, patch_out_channels=KP)
    assert neck.last_layer2.weight.shape == (KP, BOTTLENECK)
    assert neck.last_layer2.weight_g.shape == (KP, 1)
    assert neck.last_layer.weight.shape == (K, BOTTLENECK)
    x = _tokens()
    _, patch = neck(x)
    ref = neck.last_layer2(F.normalize(neck.mlp(x[:, 1:]), dim=-1))
    torch.testing.assert_close(patch, ref)


def test_shared_last_layer_with_different_sizes_raises_naming_both():
    with pytest.raises(ValueError, match='patch_out_channels=6.*'
                       'out_channels=10'):
        _neck(shared_last_layer=True, patch_out_channels=KP)


def test_norm_last_layer_freezes_weight_g_and_keeps_prototypes_unit_norm():
    neck = _neck(shared_last_layer=False, patch_out_channels=KP,
                 norm_last_layer=True)
    layers = (neck.last_layer, neck.last_layer2)
    assert not any(layer.weight_g.requires_grad for layer in layers)
    optimizer = torch.optim.SGD(
        [p for p in neck.parameters() if p.requires_grad], lr=1.0)
    cls, patch = neck(_tokens())
    (cls.pow(2).sum() + patch.pow(3).sum()).backward()
    optimizer.step()
    for layer in layers:
        assert layer.weight.grad is not None
        assert layer.weight_g.grad is None
        assert torch.equal(layer.weight_g, torch.ones_like(layer.weight_g))
        norms = layer.effective_weight().norm(dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms))


def test_without_norm_last_layer_the_prototype_norms_train():
    neck = _neck(norm_last_layer=False)
    assert neck.last_layer.weight_g.requires_grad
    optimizer = torch.optim.SGD(neck.parameters(), lr=1.0)
    cls, patch = neck(_tokens())
    (cls.pow(2).sum() + patch.pow(2).sum()).backward()
    optimizer.step()
    norms = neck.last_layer.effective_weight().norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_mlp_has_num_layers_linears_with_gelu_between(num_layers):
    neck = _neck(num_layers=num_layers)
    kinds = [type(m) for m in neck.mlp]
    assert kinds == [nn.Linear, nn.GELU] * (num_layers - 1) + [nn.Linear]
    linears = [m for m in neck.mlp if isinstance(m, nn.Linear)]
    assert linears[0].in_features == C
    assert linears[-1].out_features == BOTTLENECK
    assert all(lin.out_features == HIDDEN for lin in linears[:-1])


def test_num_layers_below_one_raises():
    with pytest.raises(ValueError, match='num_layers'):
        _neck(num_layers=0)


def test_initialisation_trunc_normal_mlp_and_linear_default_prototypes():
    torch.manual_seed(0)
    neck = iBOTNeck(64, hidden_channels=512, bottleneck_channels=32,
                    out_channels=256, patch_out_channels=256)
    for lin in (m for m in neck.mlp if isinstance(m, nn.Linear)):
        assert torch.equal(lin.bias, torch.zeros_like(lin.bias))
        assert abs(lin.weight.std().item() - 0.02) < 0.001
        assert abs(lin.weight.mean().item()) < 0.001
    v = neck.last_layer.weight
    bound = 1 / math.sqrt(32)  # nn.Linear's default: U(-1/sqrt(fan_in), .)
    assert v.abs().max().item() <= bound
    assert v.abs().max().item() > 0.95 * bound
    assert abs(v.std().item() - bound / math.sqrt(3)) < 0.01
    assert torch.equal(neck.last_layer.weight_g, torch.ones(256, 1))


def test_deepcopy_gives_an_equal_independent_module():
    neck = _neck(shared_last_layer=False, patch_out_channels=KP)
    twin = copy.deepcopy(neck)
    x = _tokens()
    for a, b in zip(neck(x), twin(x)):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        twin.last_layer.weight.add_(1.0)
    assert not torch.equal(neck.last_layer.weight, twin.last_layer.weight)
    ema = CosineEMA(neck, momentum=0.004)  # deep-copies its model
    torch.testing.assert_close(ema(x)[0], neck(x)[0])


@pytest.mark.parametrize('shared', [True, False])
def test_every_prototype_parameter_name_contains_last_layer(shared):
    neck = _neck(shared_last_layer=shared,
                 patch_out_channels=K if shared else KP)
    prototype_params = {
        id(p)
        for layer in (neck.last_layer, neck.last_layer2)
        if layer is not None for p in layer.parameters()
    }
    names = dict(neck.named_parameters())
    assert len(prototype_params) == (2 if shared else 4)
    for name, param in names.items():
        assert ('last_layer' in name) == (id(param) in prototype_params)


def test_tuple_input_uses_its_last_element():
    neck = _neck()
    x = _tokens()
    for a, b in zip(neck((torch.zeros(1), x)), neck(x)):
        torch.testing.assert_close(a, b)


def test_input_without_a_token_axis_raises():
    with pytest.raises(ValueError, match=r'\(B, 1 \+ N, C\)'):
        _neck()(torch.randn(B, C))
