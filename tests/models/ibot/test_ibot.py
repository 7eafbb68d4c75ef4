"""iBoT: ``iBOTViT``, the ``iBOT`` algorithm (EMA teacher, multi-crop
loss) and the SBAM switch ``iBOTSalienceMaskGenerator``, on tiny models
and against direct computations."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub

from mmpretrain.registry import MODELS

from mmsbam.masking import block_attention_salience

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4,
            feedforward_channels=64)
N = 49  # 28 px, 4 px patches


def _vit(type_='iBOTViT', **kwargs):
    cfg = dict(type=type_, arch=ARCH, img_size=28, patch_size=4,
               in_channels=1, out_type='raw', **kwargs)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()  # VisionTransformer.train() returns None
    return model


def _ibot(mask_generator=None, num_local_crops=2, momentum=0.996):
    cfg = dict(
        type='iBOT',
        backbone=dict(type='iBOTViT', arch=ARCH, img_size=28, patch_size=4,
                      in_channels=1, drop_path_rate=0.1),
        neck=dict(type='iBOTNeck', in_channels=32, hidden_channels=64,
                  bottleneck_channels=16, out_channels=32,
                  patch_out_channels=32),
        head=dict(type='iBOTHead', out_channels=32, patch_out_channels=32,
                  num_local_crops=num_local_crops),
        teacher_momentum=momentum)
    if mask_generator is not None:
        cfg['mask_generator'] = mask_generator
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _views(B=4, num_local=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(B, 1, 28, 28, generator=g) for _ in range(2)] +
            [torch.randn(B, 1, 12, 12, generator=g) for _ in range(num_local)])


@pytest.fixture
def message_hub():
    hub = MessageHub.get_instance('test_ibot')
    hub.update_info('max_iters', 100)
    hub.update_info('epoch', 0)
    return hub


# ------------------------------------------------------------- iBOTViT
def test_vit_mask_token_zero_and_only_extra_key():
    ours, stock = _vit(), _vit('VisionTransformer')
    assert torch.equal(ours.mask_token, torch.zeros(1, 1, 32))
    assert set(ours.state_dict()) - set(stock.state_dict()) == {'mask_token'}
    state = {k: v for k, v in ours.state_dict().items() if k != 'mask_token'}
    stock.load_state_dict(state, strict=True)
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(ours(x), stock(x)[0], atol=1e-6)  # unmasked


def test_vit_masked_positions_carry_mask_token_plus_position():
    """First layer input, computed directly: patch embedding replaced by the
    mask token where masked, then class token and position embedding."""
    vit = _vit()
    with torch.no_grad():
        vit.mask_token.normal_()
    x = torch.randn(2, 1, 28, 28)
    mask = torch.rand(2, N) < 0.5
    seen = {}
    handle = vit.layers[0].register_forward_pre_hook(
        lambda m, args: seen.setdefault('x', args[0].clone()))
    vit(x, mask)
    handle.remove()
    patches = vit.patch_embed(x)[0]
    patches = torch.where(mask[..., None], vit.mask_token.expand(2, N, -1),
                          patches)
    expected = torch.cat([vit.cls_token.expand(2, -1, -1), patches], 1) + \
        vit.pos_embed
    assert torch.allclose(seen['x'], expected, atol=1e-6)


def test_vit_forward_tokens_keeps_last_block_input():
    vit = _vit()
    x = torch.randn(2, 1, 28, 28)
    tokens, last_input = vit.forward_tokens(x)
    assert torch.allclose(vit.ln1(vit.layers[-1](last_input)), tokens,
                          atol=1e-6)
    small = vit(torch.randn(2, 1, 12, 12))  # local crop: 3x3 patches
    assert small.shape == (2, 10, 32)


# --------------------------------------------------- teacher salience
def test_block_attention_salience_direct(np_minmax):
    vit = _vit()
    _, x = vit.forward_tokens(torch.randn(3, 1, 28, 28))
    block = vit.layers[-1]
    D, H = 32, 4
    h = F.layer_norm(x, (D, ), block.ln1.weight, block.ln1.bias,
                     block.ln1.eps)
    qkv = h @ block.attn.qkv.weight.t() + block.attn.qkv.bias
    q = qkv[..., :D].reshape(3, 50, H, 8).permute(0, 2, 1, 3)
    k = qkv[..., D:2 * D].reshape(3, 50, H, 8).permute(0, 2, 1, 3)
    probs = (q @ k.transpose(-2, -1) / math.sqrt(8)).double().softmax(-1)
    probs = probs.mean(1)  # heads
    all_rows = np_minmax(probs[:, :, 1:].sum(1).detach().numpy())
    cls_row = np_minmax(probs[:, 0, 1:].detach().numpy())
    for rows, ref in (('all', all_rows), ('cls', cls_row)):
        got = block_attention_salience(block, x, rows)
        assert got.shape == (3, N)
        assert torch.allclose(got.double(), torch.from_numpy(ref),
                              atol=1e-5)


# ------------------------------------------------------------- iBOT
def test_teacher_is_ema_without_grad_and_deterministic(message_hub):
    model = _ibot()
    model.train()
    assert not model.teacher.training
    assert all(not p.requires_grad for p in model.teacher.parameters())
    views = _views()
    # first update copies the student (CosineEMA steps == 0)
    model.loss(views, None)
    for t, s in zip(model.teacher.module.parameters(),
                    torch.nn.Sequential(model.backbone,
                                        model.neck).parameters()):
        assert torch.equal(t, s)
    # drop path 0.1 is on in the student, off in the teacher
    teacher = model.teacher.module[0]
    x = views[0]
    assert torch.equal(teacher(x), teacher(x))
    assert not torch.equal(model.backbone(x), model.backbone(x))


def test_teacher_momentum_schedule(message_hub):
    """θt <- m θt + (1 - m) θs with m = 1 - 0.004 (1 + cos(π k / K)) / 2
    (iBoT's cosine from 0.996 to 1, in MMPretrain's CosineEMA)."""
    model = _ibot()
    student = torch.nn.Sequential(model.backbone, model.neck)
    model.teacher.update_parameters(student)  # step 0: copy
    teacher_before = copy.deepcopy(model.teacher.module.state_dict())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    model.teacher.update_parameters(student)  # step 1
    m = 1 - 0.004 * (1 + math.cos(math.pi * 1 / 100)) / 2
    for name, value in model.teacher.module.state_dict().items():
        if value.is_floating_point():
            expected = m * teacher_before[name] + (1 - m) * \
                student.state_dict()[name]
            assert torch.allclose(value, expected, atol=1e-6), name


def test_loss_is_finite_and_trains_only_the_student(message_hub):
    model = _ibot()
    model.train()
    losses = model.loss(_views(), None)
    assert set(losses) == {'loss_cls', 'loss_patch'}
    total = losses['loss_cls'] + losses['loss_patch']
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.patch_embed.projection.weight.grad is not None
    assert all(p.grad is None for p in model.teacher.parameters())


def test_block_masks_of_the_global_crops(message_hub):
    model = _ibot()
    random_state = __import__('random').getstate()
    model.train()
    model.loss(_views(B=8), None)
    __import__('random').setstate(random_state)
    masks = model.generate_masks(torch.cat(_views(B=8)[:2]), None, None)
    assert masks.shape == (16, N) and masks.dtype == torch.bool
    assert bool((masks.sum(1) <= 0.5 * N).all())


# ------------------------------------------- iBOTSalienceMaskGenerator
@pytest.mark.parametrize('source', ['teacher', 'embedding'])
def test_salience_masks_follow_ibot_ratios_and_salience(source,
                                                        message_hub):
    model = _ibot(dict(type='iBOTSalienceMaskGenerator',
                       salience_source=source, noise_scale=0.0))
    model.train()
    images = torch.cat(_views(B=32)[:2])
    _, last_input = model.teacher.module[0].forward_tokens(images)
    masks = model.generate_masks(images, model.teacher.module[0], last_input)
    record = model.mask_generator.masker.last_masking
    assert masks.shape == (64, N) and masks.dtype == torch.bool
    ratios = record.ratio
    unmasked = ratios == 0
    assert 0.25 < float(unmasked.float().mean()) < 0.75  # about half
    assert bool(((ratios[~unmasked] >= 0.1) & (ratios[~unmasked] <= 0.5))
                .all())
    expected = N - torch.floor(N * (1 - ratios.double())).long()
    assert torch.equal(masks.sum(1), expected)
    # noise 0: exactly the most salient tokens of each masked image
    for b in torch.nonzero(~unmasked).flatten().tolist():
        k = int(expected[b])
        assert bool(masks[b][record.salience[b].topk(k).indices].all())


def test_one_line_switch_trains_and_reproduces(message_hub):
    gen = dict(type='iBOTSalienceMaskGenerator', salience_source='teacher')
    losses = []
    for _ in range(2):
        model = _ibot(gen)
        model.train()
        torch.manual_seed(1)
        __import__('random').seed(1)
        out = model.loss(_views(), None)
        losses.append(float(out['loss_cls'] + out['loss_patch']))
    assert losses[0] == losses[1]


@pytest.mark.parametrize('kwargs,word', [
    (dict(salience_source='pixels'), 'salience_source'),
    (dict(teacher_rows='middle'), 'teacher_rows'),
    (dict(masking_prob=1.5), 'masking_prob'),
])
def test_salience_generator_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        MODELS.build(dict(type='iBOTSalienceMaskGenerator', **kwargs))


def test_bad_teacher_momentum():
    with pytest.raises(ValueError, match='teacher_momentum'):
        _ibot(momentum=1.0)


# ------------------------------------------------- evaluation path
@pytest.mark.parametrize('size,config', [
    ('small', 'vit-small-p16_8xb2048-linear-coslr-90e_in1k.py'),
    ('base', 'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'),
])
def test_teacher_backbone_loads_into_the_linear_benchmark(size, config):
    """The teacher backbone of an iBOT of the recipe's size, extracted,
    loads strictly into the stock ViT of configs/ibot/benchmarks/."""
    import os.path as osp

    from mmengine.config import Config

    from conftest import ROOT
    from mmsbam.models.ibot import ibot_backbone_state
    arch = 'deit-small' if size == 'small' else 'base'
    with torch.device('meta'):
        teacher = MODELS.build(dict(type='iBOTViT', arch=arch))
    state = {f'teacher.module.0.{k}': v
             for k, v in teacher.state_dict().items()}
    backbone = {k[len('backbone.'):]: v
                for k, v in ibot_backbone_state(state).items()}
    cfg = Config.fromfile(osp.join(ROOT, 'configs/ibot/benchmarks', config))
    with torch.device('meta'):
        stock = MODELS.build(cfg.model).backbone
    assert type(stock).__name__ == 'VisionTransformer'
    stock.load_state_dict(backbone, strict=True, assign=True)


def test_salience_masks_with_amr_ratios(message_hub):
    """amr=: each image masked with probability masking_prob, at the AMR
    ratio of its own salience."""
    from mmsbam.masking import adaptive_mask_ratio
    model = _ibot(dict(type='iBOTSalienceMaskGenerator',
                       amr=dict(base_ratio=0.3, ratio_var=0.2, delta=0.2),
                       masking_prob=0.5))
    model.train()
    images = torch.cat(_views(B=32)[:2])
    _, last_input = model.teacher.module[0].forward_tokens(images)
    masks = model.generate_masks(images, model.teacher.module[0], last_input)
    record = model.mask_generator.masker.last_masking
    masked = record.ratio > 0
    assert 0.25 < float(masked.float().mean()) < 0.75
    expected = adaptive_mask_ratio(record.salience, 0.3, 0.2, 0.2)
    assert torch.allclose(record.ratio[masked], expected[masked])
    counts = N - torch.floor(N * (1 - record.ratio.double())).long()
    assert torch.equal(masks.sum(1), counts)
