"""iBoT's per-parameter gradient clip and last-layer freeze
(``IBOT.md`` section 1.4), in MMEngine optimizer wrappers."""
import copy
import uuid

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from mmpretrain.registry import OPTIM_WRAPPERS
from mmsbam.engine.optimizers import ibot_optim_wrapper
from mmsbam.engine.optimizers.ibot_optim_wrapper import (AmpiBOTOptimWrapper,
                                                         iBOTGradientMixin,
                                                         iBOTOptimWrapper)

TAGS = dict(custom_keys={'last_layer': dict(last_layer=True)})


class _Prototypes(nn.Module):
    """A weight-normalised prototype layer as iBOTNeck's (g frozen)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels))
        self.weight_g = nn.Parameter(
            torch.ones(out_channels, 1), requires_grad=False)

    def forward(self, x):
        w = self.weight_g * self.weight / self.weight.norm(dim=1, keepdim=True)
        return x @ w.t()


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Linear(4, 6)
        self.mlp = nn.Linear(6, 3)
        self.last_layer = _Prototypes(3, 5)
        self.last_layer2 = _Prototypes(3, 5)

    def loss(self, x):
        z = self.mlp(torch.tanh(self.backbone(x)))
        logits = self.last_layer(z) + self.last_layer2(z)
        return -logits.log_softmax(-1)[:, 0].mean()


@pytest.fixture
def hub():
    """A fresh current MessageHub (the wrappers read 'epoch' and 'iter')."""
    hub = MessageHub.get_instance(f'test_ibot_optim_{uuid.uuid4().hex}')
    hub.update_info('epoch', 0)
    hub.update_info('iter', 0)
    return hub


def _build(model, **wrapper_kwargs):
    cfg = dict(
        type='iBOTOptimWrapper',
        optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.04),
        paramwise_cfg=TAGS)
    cfg.update(wrapper_kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return build_optim_wrapper(model, cfg)


def _grads_with_norms(norms):
    torch.manual_seed(1)
    params = []
    for norm, shape in zip(norms, [(3, 4), (7, ), (2, 2, 2)]):
        p = nn.Parameter(torch.zeros(shape))
        g = torch.randn(shape)
        p.grad = g * (norm / g.norm())
        params.append(p)
    return params


def _snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_per_param_clip_matches_a_direct_computation(hub):
    params = _grads_with_norms([10.0, 0.5, 4.0])
    before = [p.grad.double().clone() for p in params]
    wrapper = iBOTOptimWrapper(
        torch.optim.SGD(params, lr=0.0),
        clip_grad=dict(type='per_param', max_norm=3.0),
        freeze_last_layer_epochs=0)
    wrapper.step()
    for p, g in zip(params, before):
        coef = 3.0 / (g.norm().item() + 1e-6)
        want = g * coef if coef < 1 else g
        torch.testing.assert_close(p.grad.double(), want, rtol=1e-6, atol=0)
        assert p.grad.norm() <= 3.0 + 1e-5
    # a gradient within the bound is left bit for bit
    assert torch.equal(params[1].grad, before[1].float())
    total = torch.stack([g.norm() for g in before]).norm().item()
    assert hub.get_scalar('train/grad_norm').current() == pytest.approx(total)


def test_per_param_clip_is_not_a_global_norm_clip(hub):
    ours = _grads_with_norms([10.0, 0.5, 4.0])
    glob = _grads_with_norms([10.0, 0.5, 4.0])
    iBOTOptimWrapper(
        torch.optim.SGD(ours, lr=0.0),
        clip_grad=dict(type='per_param', max_norm=3.0),
        freeze_last_layer_epochs=0).step()
    torch.nn.utils.clip_grad_norm_(glob, 3.0)
    norms = [p.grad.norm().item() for p in ours]
    assert norms == pytest.approx([3.0, 0.5, 3.0], rel=1e-5)
    assert [p.grad.norm().item() for p in glob] != pytest.approx(norms)


@pytest.mark.parametrize('clip_grad', [
    dict(max_norm=1.0),
    dict(type='norm', max_norm=1.0, norm_type=1),
    dict(type='value', clip_value=0.3),
])
def test_other_clip_types_behave_as_mmengine(hub, clip_grad):
    ours = _grads_with_norms([10.0, 0.5, 4.0])
    stock = _grads_with_norms([10.0, 0.5, 4.0])
    cfg = copy.deepcopy(clip_grad)
    iBOTOptimWrapper(
        torch.optim.SGD(ours, lr=0.0),
        clip_grad=cfg,
        freeze_last_layer_epochs=0).step()
    OptimWrapper(
        torch.optim.SGD(stock, lr=0.0),
        clip_grad=copy.deepcopy(clip_grad)).step()
    for a, b in zip(ours, stock):
        assert torch.equal(a.grad, b.grad)
    assert cfg == clip_grad  # the config dict is not consumed


@pytest.mark.parametrize('clip_grad,match', [
    (dict(type='per_param'), 'max_norm'),
    (dict(type='per_param', max_norm=0.), 'max_norm'),
    (dict(type='per_param', max_norm=3., norm_type=1), 'norm_type'),
])
def test_bad_per_param_configs_raise_value_errors(hub, clip_grad, match):
    params = _grads_with_norms([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=match):
        iBOTOptimWrapper(
            torch.optim.SGD(params, lr=0.0),
            clip_grad=clip_grad,
            freeze_last_layer_epochs=0)


def test_build_optim_wrapper_tags_exactly_the_trainable_last_layer_params(hub):
    model = _Net()
    wrapper = _build(model, clip_grad=dict(type='per_param', max_norm=3.0))
    assert isinstance(wrapper, iBOTOptimWrapper)
    tagged = {
        id(p)
        for g in wrapper.optimizer.param_groups if g.get('last_layer')
        for p in g['params']
    }
    want = {id(model.last_layer.weight), id(model.last_layer2.weight)}
    assert tagged == want  # the frozen weight_g are not in the optimizer
    for group in wrapper.optimizer.param_groups:
        assert group['weight_decay'] == 0.04


def test_last_layer_is_bit_identical_while_frozen_and_moves_after(hub):
    model = _Net()
    wrapper = _build(model, clip_grad=dict(type='per_param', max_norm=3.0))
    x = torch.randn(8, 4)
    start = _snapshot(model)
    seen = []
    step = wrapper.optimizer.step

    def spy(*args, **kwargs):
        seen.append(model.last_layer.weight.grad is None
                    and model.last_layer2.weight.grad is None
                    and model.mlp.weight.grad is not None)
        return step(*args, **kwargs)

    wrapper.optimizer.step = spy
    for _ in range(3):  # epoch 0 of freeze_last_layer_epochs=1
        wrapper.update_params(model.loss(x))
    after = _snapshot(model)
    for name in ('last_layer.weight', 'last_layer2.weight'):
        assert torch.equal(after[name], start[name]), name
    for name in ('backbone.weight', 'backbone.bias', 'mlp.weight'):
        assert not torch.equal(after[name], start[name]), name
    assert seen == [True] * 3
    hub.update_info('epoch', 1)
    wrapper.update_params(model.loss(x))
    moved = _snapshot(model)
    for name in ('last_layer.weight', 'last_layer2.weight'):
        assert not torch.equal(moved[name], start[name]), name


def test_a_zero_gradient_would_not_freeze_under_adamw_weight_decay(hub):
    # why the wrapper sets grad = None: the control for the test above
    model = _Net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.04)
    start = model.last_layer.weight.detach().clone()
    model.loss(torch.randn(8, 4)).backward()
    model.last_layer.weight.grad.zero_()
    opt.step()
    assert not torch.equal(model.last_layer.weight, start)


def test_freeze_can_count_iterations_for_iteration_based_loops(hub):
    model = _Net()
    wrapper = _build(
        model, freeze_last_layer_epochs=0, freeze_last_layer_iters=2)
    x = torch.randn(8, 4)
    start = model.last_layer.weight.detach().clone()
    for it in range(2):
        hub.update_info('iter', it)
        wrapper.update_params(model.loss(x))
        assert torch.equal(model.last_layer.weight, start)
    hub.update_info('iter', 2)
    wrapper.update_params(model.loss(x))
    assert not torch.equal(model.last_layer.weight, start)


def test_no_freeze_steps_the_last_layer_from_the_first_iteration(hub):
    model = _Net()
    wrapper = _build(model, freeze_last_layer_epochs=0, paramwise_cfg=None)
    start = model.last_layer.weight.detach().clone()
    wrapper.update_params(model.loss(torch.randn(8, 4)))
    assert not torch.equal(model.last_layer.weight, start)


def test_freezing_without_a_tagged_group_is_refused(hub):
    with pytest.raises(ValueError, match=r'last_layer=True'):
        _build(_Net(), paramwise_cfg=None)
    with pytest.raises(ValueError, match=r'last_layer=True'):
        _build(_Net(), freeze_last_layer_epochs=0, freeze_last_layer_iters=5,
               paramwise_cfg=None)


@pytest.mark.parametrize('key', [
    'freeze_last_layer_epochs', 'freeze_last_layer_iters'])
def test_bad_freeze_lengths_raise_value_errors(hub, key):
    with pytest.raises(ValueError, match=key):
        _build(_Net(), **{key: -1})


def test_warns_once_when_the_freeze_covers_the_whole_run(hub, monkeypatch):
    warnings = []
    monkeypatch.setattr(ibot_optim_wrapper, 'print_log',
                        lambda msg, **kwargs: warnings.append(msg))
    model = _Net()
    wrapper = _build(model)
    hub.update_info('max_epochs', 1)  # e.g. an IterBasedTrainLoop
    for _ in range(2):
        wrapper.update_params(model.loss(torch.randn(8, 4)))
    assert len(warnings) == 1 and 'freeze_last_layer_iters' in warnings[0]


def test_both_wrappers_are_registered_and_share_the_mixin():
    plain = OPTIM_WRAPPERS.get('iBOTOptimWrapper')
    amp = OPTIM_WRAPPERS.get('AmpiBOTOptimWrapper')
    assert plain is iBOTOptimWrapper and amp is AmpiBOTOptimWrapper
    assert issubclass(plain, (iBOTGradientMixin, OptimWrapper))
    assert issubclass(amp, iBOTGradientMixin)
    assert issubclass(amp, AmpOptimWrapper)
    assert amp.step is iBOTGradientMixin.step


@pytest.fixture
def cpu_amp(monkeypatch):
    """Let MMEngine's AmpOptimWrapper run on a CPU: its device check passes
    and its GradScaler is torch's device-generic one (the CPU scaler
    unscales, checks for inf and skips steps as the CUDA one does)."""
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    monkeypatch.setattr(amp_optimizer_wrapper, 'GradScaler',
                        torch.amp.GradScaler)


def _amp_wrapper(params, init_scale):
    return AmpiBOTOptimWrapper(
        optimizer=torch.optim.SGD(params, lr=1.0),
        loss_scale=dict(device='cpu', init_scale=init_scale,
                        growth_interval=1),
        clip_grad=dict(type='per_param', max_norm=3.0),
        freeze_last_layer_epochs=0)


def test_amp_wrapper_unscales_then_clips_then_steps_then_updates(
        hub, cpu_amp):
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # grad 2w: norm 10 -> 3
    v = nn.Parameter(torch.tensor([0.1, 0.2]))  # grad 2v: norm 0.45 -> kept
    wrapper = _amp_wrapper([w, v], init_scale=1024.)
    wrapper.update_params((w**2).sum() + (v**2).sum())
    g_w = torch.tensor([6.0, 8.0], dtype=torch.float64)
    want_w = torch.tensor([3.0, 4.0], dtype=torch.float64) - g_w * (
        3.0 / (10.0 + 1e-6))
    torch.testing.assert_close(w.detach().double(), want_w, rtol=1e-6,
                               atol=1e-6)
    torch.testing.assert_close(v.detach(), torch.tensor([-0.1, -0.2]))
    assert wrapper.loss_scaler.get_scale() == 2048.  # update() after step
    total = (g_w.norm()**2 + 0.2).sqrt().item()  # unscaled, pre-clip
    assert hub.get_scalar('train/grad_norm').current() == pytest.approx(total)


def test_amp_wrapper_cancels_the_frozen_last_layer(hub, cpu_amp):
    model = _Net()
    wrapper = AmpiBOTOptimWrapper(
        optimizer=torch.optim.AdamW([
            dict(params=[model.backbone.weight]),
            dict(params=[model.last_layer.weight], last_layer=True),
        ], lr=1e-2, weight_decay=0.04),
        loss_scale=dict(device='cpu', init_scale=256.),
        clip_grad=dict(type='per_param', max_norm=3.0))
    start = _snapshot(model)
    wrapper.update_params(model.loss(torch.randn(8, 4)))
    assert torch.equal(model.last_layer.weight, start['last_layer.weight'])
    assert not torch.equal(model.backbone.weight, start['backbone.weight'])


def test_amp_wrapper_still_skips_a_step_with_overflowing_gradients(
        hub, cpu_amp):
    w = nn.Parameter(torch.tensor([3.0, 4.0]))
    wrapper = _amp_wrapper([w], init_scale=1e38)  # scaled grads overflow
    wrapper.update_params((w**2).sum())
    assert torch.equal(w.detach(), torch.tensor([3.0, 4.0]))
    assert wrapper.loss_scaler.get_scale() == pytest.approx(5e37)


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='AmpOptimWrapper needs a GPU; the CPU tests above run its logic '
    "with torch's CPU GradScaler")
def test_amp_wrapper_trains_on_a_gpu_with_clip_and_freeze(hub):
    model = _Net().cuda()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(
            model,
            dict(
                type='AmpiBOTOptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.04),
                clip_grad=dict(type='per_param', max_norm=3.0),
                paramwise_cfg=TAGS))
    start = _snapshot(model)
    x = torch.randn(8, 4, device='cuda')
    for _ in range(3):
        with wrapper.optim_context(model):
            loss = model.loss(x)
        wrapper.update_params(loss)
    after = _snapshot(model)
    assert torch.equal(after['last_layer.weight'], start['last_layer.weight'])
    assert not torch.equal(after['backbone.weight'], start['backbone.weight'])
