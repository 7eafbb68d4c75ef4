"""CMAE: ``CMAEViT`` (cell masks, target forward), ``ShiftPixel``, the
``CMAE`` algorithm (each loss term against an independent float64
reference, the EMA target step by step, the LR schedule) and the SBAM
encoder ``SBAMCMAEViT``, on tiny models."""
import copy
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from conftest import ROOT
from mmpretrain.registry import MODELS, TRANSFORMS

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4,
            feedforward_channels=64)
IMG, P = 32, 4  # 8 x 8 patches, 4 x 4 cells of 2 x 2 patches
TAU = 0.07  # the official temperature; CMAE weights L_ct by 2 tau


def _vit(type_='CMAEViT', img=IMG, patch=P, seed=0, **kwargs):
    cfg = dict(type=type_, arch=ARCH, img_size=img, patch_size=patch,
               patch_cfg=dict(in_channels=1), **kwargs)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def _decoder(**kwargs):
    return dict(type='MAEPretrainDecoder', num_patches=(IMG // P)**2,
                patch_size=P, in_chans=1, embed_dim=32, decoder_embed_dim=32,
                decoder_depth=1, decoder_num_heads=4, **kwargs)


def _mlp(cin, hid, out):
    return dict(type='NonLinearNeck', in_channels=cin, hid_channels=hid,
                out_channels=out, num_layers=2, with_bias=True,
                with_last_bn=False, with_avg_pool=False,
                norm_cfg=dict(type='SyncBN', eps=1e-6))


def _cmae_cfg(backbone_type='CMAEViT', **overrides):
    cfg = dict(
        type='CMAE',
        backbone=dict(type=backbone_type, arch=ARCH, img_size=IMG,
                      patch_size=P, patch_cfg=dict(in_channels=1),
                      mask_ratio=0.65, mask_unit=2),
        neck=_decoder(),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=P,
                  in_channels=1,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        feature_decoder=_decoder(predict_feature_dim=32),
        projector=_mlp(32, 64, 16),
        contrastive_head=dict(
            type='MoCoV3Head', predictor=_mlp(16, 64, 16),
            loss=dict(type='CrossEntropyLoss', loss_weight=2 * TAU),
            temperature=TAU),
        base_momentum=0.996, end_momentum=0.996)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def _cmae(backbone_type='CMAEViT', seed=0, **overrides):
    torch.manual_seed(seed)
    model = MODELS.build(_cmae_cfg(backbone_type, **overrides))
    model.init_weights()
    model.train()
    return model


def _views(B=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, 1, IMG, IMG, generator=g, dtype=dtype)
            for _ in range(2)]


@pytest.fixture
def message_hub():
    hub = MessageHub.get_instance('test_cmae')
    hub.update_info('max_iters', 100)
    return hub


# ------------------------------------------------------------ cell masks
@pytest.mark.parametrize('img,patch,visible', [(IMG, P, 4 * 5),
                                               (224, 16, 68)])
def test_cell_masks_constant_on_cells_with_cmae_count(img, patch, visible):
    """Constant on 2 x 2 cells; 4 int(C (1 - 0.65)) visible patches (16
    cells -> 20 of 64; ViT-B/16's 49 cells -> 68 of 196, 65.3 % masked);
    ``ids_restore`` inverts the keep order; ``x_masked`` holds exactly the
    visible tokens."""
    vit = _vit(img=img, patch=patch, mask_ratio=0.65)
    H = img // patch
    x = torch.randn(6, H * H, 32)
    torch.manual_seed(1)
    x_masked, mask, ids_restore = vit.random_masking(x, 0.65)
    assert mask.shape == (6, H * H) and mask.dtype == torch.float32
    assert torch.equal((mask == 0).sum(1), torch.full((6, ), visible))
    grid = mask.view(6, H // 2, 2, H // 2, 2)
    assert torch.equal(grid, grid[:, :, :1, :, :1].expand_as(grid))
    # ids_restore: the inverse of the order (visible first, then masked)
    order = torch.argsort(ids_restore, dim=1)
    assert torch.equal(order.gather(1, ids_restore),
                       torch.arange(H * H).expand(6, -1))
    assert torch.equal(mask.gather(1, order)[:, :visible],
                       torch.zeros(6, visible))
    assert torch.equal(x_masked,
                       x.gather(1, order[:, :visible, None].expand(-1, -1,
                                                                   32)))


def test_cell_masks_follow_the_seed():
    vit = _vit()
    x = torch.randn(4, 64, 32)
    masks = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        masks.append(vit.random_masking(x, 0.65)[1])
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])


def test_cell_masks_are_uniform_over_cells():
    """Every cell is masked with probability 11/16 (random cells)."""
    vit = _vit()
    torch.manual_seed(0)
    mask = vit.random_masking(torch.zeros(4000, 64, 32), 0.65)[1]
    freq = mask.view(4000, 4, 2, 4, 2)[:, :, 0, :, 0].mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 11 / 16), atol=0.03)


@pytest.mark.parametrize('kwargs,key', [
    (dict(mask_unit=3), 'mask_unit'), (dict(mask_unit=0), 'mask_unit'),
    (dict(mask_ratio=0.97), 'mask_ratio'), (dict(mask_ratio=1.0),
                                            'mask_ratio')])
def test_bad_masking_arguments_are_refused(kwargs, key):
    with pytest.raises(ValueError, match=key):
        _vit(**kwargs)


def test_target_forward_is_mean_of_patch_tokens_without_final_norm():
    """Class token + all patches through every block, no ``ln1``, mean of
    the patch tokens: computed here with the blocks called one by one."""
    vit = _vit()
    vit.eval()  # VisionTransformer.train() returns None
    x = torch.randn(3, 1, IMG, IMG)
    with torch.no_grad():
        t = vit.patch_embed(x)[0] + vit.pos_embed[:, 1:]
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(3, -1, -1)
        t = torch.cat([cls, t], 1)
        for layer in vit.layers:
            t = layer(t)
        expected = t[:, 1:].mean(1)
        got = vit.forward_target(x)
        vit.ln1.weight.mul_(3.0).add_(1.0)  # the final norm plays no part
        assert torch.allclose(vit.forward_target(x), got)
    assert torch.allclose(got, expected, atol=1e-6)


def test_encoder_keys_are_the_stock_vit_keys():
    ours = _vit()
    stock = MODELS.build(dict(type='VisionTransformer', arch=ARCH,
                              img_size=IMG, patch_size=P,
                              patch_cfg=dict(in_channels=1)))
    stock.load_state_dict(ours.state_dict(), strict=True)


# ------------------------------------------------------------ ShiftPixel
def test_shift_pixel_offsets_cover_zero_to_pixel_inclusive():
    t = TRANSFORMS.build(dict(type='ShiftPixel', pixel=7, size=32))
    img = np.arange(40 * 40, dtype=np.int64).reshape(40, 40)
    np.random.seed(0)
    offsets = set()
    for _ in range(2000):
        out = t(dict(img=img.copy()))['img']
        assert out.shape == (32, 32)
        dy, dx = divmod(int(out[0, 0]), 40)
        assert np.array_equal(out, img[dy:dy + 32, dx:dx + 32])
        offsets.add((dy, dx))
    assert offsets == {(y, x) for y in range(8) for x in range(8)}


def test_shift_pixel_zero_is_the_top_left_crop_and_seeded():
    img = np.random.RandomState(0).randint(0, 255, (40, 40, 3), np.uint8)
    t0 = TRANSFORMS.build(dict(type='ShiftPixel', pixel=0, size=32))
    assert np.array_equal(t0(dict(img=img))['img'], img[:32, :32])
    t = TRANSFORMS.build(dict(type='ShiftPixel', pixel=7, size=32))
    np.random.seed(5)
    a = [t(dict(img=img))['img'] for _ in range(3)]
    np.random.seed(5)
    b = [t(dict(img=img))['img'] for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_shift_pixel_refuses_small_images_and_bad_arguments():
    t = TRANSFORMS.build(dict(type='ShiftPixel', pixel=7, size=32))
    with pytest.raises(ValueError, match='39 px'):
        t(dict(img=np.zeros((38, 40), np.uint8)))
    with pytest.raises(ValueError, match='pixel'):
        TRANSFORMS.build(dict(type='ShiftPixel', pixel=-1, size=32))


# ------------------------------------------------- loss terms (float64)
def _ref_rc(img, pred, mask, p=P):
    """MAE's norm-pixel L2 (official ``CMAEPretrainHead``): patchify in
    (p, q, c) order, per-patch mean and unbiased var over the p²C values,
    (x - mean) / sqrt(var + 1e-6); mean over values, then over masked
    patches."""
    B, C, H, W = img.shape
    h, w = H // p, W // p
    x = img.reshape(B, C, h, p, w, p).transpose(0, 2, 4, 3, 5, 1)
    x = x.reshape(B, h * w, p * p * C)
    t = (x - x.mean(-1, keepdims=True)) / np.sqrt(
        x.var(-1, ddof=1, keepdims=True) + 1e-6)
    per_patch = ((pred - t)**2).mean(-1)
    return (per_patch * mask).sum() / mask.sum()


def _ref_ct(z, k, tau=TAU):
    """2 tau CE(z kᵀ / tau, arange(B)) on L2-normalised z, k (one
    direction, official ``CMAEPretrainHead``)."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    k = k / np.linalg.norm(k, axis=1, keepdims=True)
    logits = z @ k.T / tau
    top = logits.max(1, keepdims=True)
    logp = logits - top - np.log(np.exp(logits - top).sum(1, keepdims=True))
    return 2 * tau * -np.mean(np.diag(logp))


def _loss_with_captures(model, views):
    """``model.loss`` and what its parts produced, captured by hooks."""
    seen = {}

    def keep(name, use_input=False):
        def hook(module, args, output):
            seen[name] = args if use_input else output
        return hook

    handles = [
        model.backbone.register_forward_hook(keep('backbone')),
        model.neck.register_forward_hook(keep('pred')),
        model.feature_decoder.register_forward_hook(keep('features')),
        model.projector.register_forward_hook(keep('projector_in', True)),
        model.contrastive_head.predictor.register_forward_hook(keep('z')),
        model.teacher.module['projector'].register_forward_hook(keep('k')),
        model.teacher.module['projector'].register_forward_hook(
            keep('key_in', True)),
    ]
    try:
        losses = model.loss(views, None)
    finally:
        for h in handles:
            h.remove()
    return losses, seen


def _terms_match(model, views):
    """Whether ``loss_rc`` and ``loss_ct`` equal the references with the
    official constants (tau 0.07, weights 1, 2 tau, eps 1e-6, unbiased
    var) to float64 rounding."""
    losses, seen = _loss_with_captures(model, views)
    n = lambda t: t.detach().double().numpy()  # noqa: E731
    _, mask, _ = seen['backbone']
    rc = _ref_rc(n(views[0]), n(seen['pred']), n(mask))
    ct = _ref_ct(n(seen['z'][0]), n(seen['k'][0]))
    return (math.isclose(losses['loss_rc'].item(), rc, rel_tol=1e-10)
            and math.isclose(losses['loss_ct'].item(), ct, rel_tol=1e-10))


def test_loss_terms_equal_float64_references(message_hub):
    model = _cmae().double()
    assert _terms_match(model, _views(dtype=torch.float64))


@pytest.mark.parametrize('planted', [
    dict(rc_weight=1.5),
    dict(ct_weight=0.5),
    dict(contrastive_head=dict(temperature=0.1)),
    dict(contrastive_head=dict(loss=dict(type='CrossEntropyLoss',
                                         loss_weight=TAU))),
    dict(head=dict(norm_pix=False)),
], ids=['rc_weight', 'ct_weight', 'temperature', 'ct_normaliser',
        'pixel_normaliser'])
def test_a_planted_change_fails_the_reference(planted, message_hub):
    model = _cmae(**planted).double()
    assert not _terms_match(model, _views(dtype=torch.float64))


def test_contrastive_inputs(message_hub):
    """The projector reads the mean of all L feature-decoder outputs
    (visible and mask-token positions); the key is the target projector
    on the target encoder's mean patch token of the target view; keys
    carry no gradient and no gradient reaches the target."""
    model = _cmae()
    views = _views()
    losses, seen = _loss_with_captures(model, views)
    assert seen['features'].shape == (8, 64, 32)
    assert torch.allclose(seen['projector_in'][0][0],
                          seen['features'].mean(1))
    target = model.teacher.module['backbone']
    with torch.no_grad():
        assert torch.allclose(seen['key_in'][0][0],
                              target.forward_target(views[1]))
    assert not seen['k'][0].requires_grad
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.backbone.patch_embed.projection.weight.grad is not None
    assert model.projector.fc0.weight.grad is not None


# ------------------------------------------------------------ EMA target
def test_target_is_ema_of_backbone_and_projector_step_by_step(message_hub):
    """First update copies the online weights; then every iteration
    target = 0.996 target + 0.004 online (constant, the official hook's
    cosine from 0.996 to 0.996), over the encoder and the projector."""
    model = _cmae()
    online = model._online()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    views = _views()
    target = model.teacher.module
    names = [n for n, _ in online.named_parameters()]
    assert any(n.startswith('projector.') for n in names)
    assert dict(target.named_parameters()).keys() == set(names)
    prev_target = None
    for step in range(3):
        before = {n: p.detach().clone().double()
                  for n, p in online.named_parameters()}
        sum(model.loss(views, None).values()).backward()
        now = dict(target.named_parameters())
        for name in names:
            expected = before[name] if prev_target is None else \
                0.996 * prev_target[name] + 0.004 * before[name]
            assert torch.allclose(now[name].double(), expected, atol=1e-6), \
                (step, name)
        prev_target = {n: p.detach().clone().double() for n, p in
                       now.items()}
        opt.step()
        opt.zero_grad()
    assert int(model.teacher.steps) == 3


def test_target_modes(message_hub):
    """Target encoder in eval mode (no drop path); target projector's BN in
    train mode (batch statistics), as in the official code."""
    model = _cmae()
    model.train()
    assert not model.teacher.module['backbone'].training
    bn = model.teacher.module['projector'].bn0
    assert bn.training
    # batch statistics: the key of an image depends on the rest of the batch
    with torch.no_grad():
        proj = model.teacher.module['projector']
        feats = torch.randn(8, 32)
        a = proj([feats])[0][:4]
        b = proj([torch.cat([feats[:4], 10 * feats[4:]])])[0][:4]
    assert not torch.allclose(a, b)


def test_momentum_and_weights_are_checked():
    with pytest.raises(ValueError, match='base_momentum'):
        _cmae(base_momentum=1.0)
    with pytest.raises(ValueError, match='ct_weight'):
        _cmae(ct_weight=-1)
    with pytest.raises(ValueError, match='predict_feature_dim'):
        _cmae(feature_decoder=dict(predict_feature_dim=None))  # 16 != 32


def test_two_views_are_required(message_hub):
    with pytest.raises(ValueError, match='two views'):
        _cmae().loss([_views()[0]], None)


# ------------------------------------------------------------ LR schedule
def test_recipe_lr_schedule_step_by_step():
    """The ViT-B recipe's LR at every iteration (10 per epoch, shortened to
    4 + 6 epochs): 2.4e-3 (1e-4 + (1 - 1e-4) t / (T_w - 1)) in the
    warm-up (MMEngine's LinearLR reaches its end factor at the warm-up's
    last iteration; the official mmengine config uses the same scheduler),
    then 2.4e-3 (1 + cos(pi (t - T_w) / (T - T_w))) / 2."""
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    cfg = Config.fromfile(
        f'{ROOT}/configs/cmae/cmae_vit-base-p16_32xb128-coslr-1600e_in1k.py')
    peak = cfg.optim_wrapper.optimizer.lr
    assert peak == pytest.approx(2.4e-3)
    warm, cos = (dict(s) for s in cfg.param_scheduler)
    assert (warm['end'], cos['begin'], cos['end'], cos['T_max']) == \
        (40, 40, 1600, 1560)
    assert warm['start_factor'] == 1e-4 and cos['eta_min'] == 0
    epoch_len, Tw, T = 10, 4, 10
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=peak)
    schedulers = [
        LinearLR.build_iter_from_epoch(
            opt, start_factor=1e-4, begin=0, end=Tw, by_epoch=True,
            epoch_length=epoch_len),
        CosineAnnealingLR.build_iter_from_epoch(
            opt, T_max=T - Tw, eta_min=0., begin=Tw, end=T, by_epoch=True,
            epoch_length=epoch_len)]
    for t in range(T * epoch_len):
        if t < Tw * epoch_len:
            expected = peak * (1e-4 + (1 - 1e-4) * t / (Tw * epoch_len - 1))
        else:
            u = (t - Tw * epoch_len) / ((T - Tw) * epoch_len)
            expected = peak * (1 + math.cos(math.pi * u)) / 2
        assert opt.param_groups[0]['lr'] == pytest.approx(expected,
                                                          rel=1e-9), t
        opt.step()
        for s in schedulers:
            s.step()


# ------------------------------------------------------------ SBAM encoder
def test_sbam_masks_the_most_salient_cells_with_cmae_count(
        np_token_salience, np_minmax):
    """noise 0: the 11 of 16 cells with the highest cell salience (the
    patch salience X Xᵀ averaged over each 2 x 2 cell, min-max
    re-normalised; computed here in float64) are masked, as many as CMAE
    masks."""
    vit = _vit('SBAMCMAEViT', noise_scale=0.0)
    vit.eval()
    x = torch.randn(5, 1, IMG, IMG)
    with torch.no_grad():
        tokens = vit.patch_embed(x)[0] + vit.pos_embed[:, 1:]
        _, mask, _ = vit.random_masking(tokens, 0.65)
    s = np_token_salience(tokens.numpy()).reshape(5, 4, 2, 4, 2)
    cells = np_minmax(s.mean((2, 4)).reshape(5, 16))
    top = np.argsort(-cells, axis=1)[:, :11]
    cell_mask = mask.view(5, 4, 2, 4, 2)[:, :, 0, :, 0].reshape(5, 16)
    expected = np.zeros((5, 16))
    np.put_along_axis(expected, top, 1.0, axis=1)
    assert np.array_equal(cell_mask.numpy(), expected)
    assert torch.equal((mask == 0).sum(1), torch.full((5, ), 20))


def test_sbam_warmup_is_random_cells():
    vit = _vit('SBAMCMAEViT')
    vit.masker.sbam_enabled = False
    torch.manual_seed(0)
    mask = vit.random_masking(torch.randn(2000, 64, 32), 0.65)[1]
    freq = mask.view(2000, 4, 2, 4, 2)[:, :, 0, :, 0].mean(0)
    assert torch.allclose(freq, torch.full_like(freq, 11 / 16), atol=0.04)


def test_sbam_refuses_per_image_amr_and_takes_batch_amr():
    with pytest.raises(ValueError, match="mode='sample'.*not supported"):
        _vit('SBAMCMAEViT', amr=dict(mode='sample'))
    vit = _vit('SBAMCMAEViT', amr=dict(mode='batch', ratio_var=0.1))
    _, mask, _ = vit.random_masking(torch.randn(4, 64, 32), 0.65)
    counts = mask.sum(1)
    assert torch.equal(counts, counts[:1].expand(4))
    assert int(counts[0]) % 4 == 0


def test_sbam_teacher_salience_is_the_target_attention(message_hub):
    """``salience_source='teacher'``: the masks follow the target
    encoder's last-block attention on the unmasked online view (column sum
    over all rows, heads averaged; computed here in float64), averaged per
    cell (noise 0: the top cells are masked)."""
    model = _cmae('SBAMCMAEViT', backbone=dict(salience_source='teacher',
                                               noise_scale=0.0))
    assert not hasattr(model.teacher.module['backbone'], 'masker')
    views = _views(B=4)
    _, seen = _loss_with_captures(model, views)
    mask = seen['backbone'][1]
    target = model.teacher.module['backbone']
    with torch.no_grad():
        _, x = target.target_tokens(views[0])
        block = target.layers[-1]
        x = x.double()
        h = torch.nn.functional.layer_norm(
            x, (32, ), block.ln1.weight.double(), block.ln1.bias.double(),
            block.ln1.eps)
        qkv = h @ block.attn.qkv.weight.double().t() + \
            block.attn.qkv.bias.double()
        q, k = (qkv[..., i * 32:(i + 1) * 32].reshape(4, 65, 4, 8)
                .transpose(1, 2) for i in (0, 1))
        attn = (q @ k.transpose(-2, -1) / math.sqrt(8)).softmax(-1)
        s = attn.mean(1).sum(1)[:, 1:].numpy()  # received by each patch
    s = (s - s.min(1, keepdims=True)) / np.ptp(s, 1, keepdims=True)
    cells = s.reshape(4, 4, 2, 4, 2).mean((2, 4)).reshape(4, 16)
    top = np.argsort(-cells, axis=1)[:, :11]
    cell_mask = mask.view(4, 4, 2, 4, 2)[:, :, 0, :, 0].reshape(4, 16)
    expected = np.zeros((4, 16))
    np.put_along_axis(expected, top, 1.0, axis=1)
    assert np.array_equal(cell_mask.numpy(), expected)


def test_sbam_teacher_salience_needs_the_algorithm():
    vit = _vit('SBAMCMAEViT', salience_source='teacher')
    with pytest.raises(ValueError, match='salience='):
        vit(torch.randn(2, 1, IMG, IMG))


def test_sbam_adds_no_parameters():
    ours, plain = _vit('SBAMCMAEViT'), _vit()
    assert ours.state_dict().keys() == plain.state_dict().keys()


# ------------------------------------------------------------ checkpoint
def test_pretraining_checkpoint_loads_into_the_linear_config(tmp_path,
                                                             message_hub):
    """A whole CMAE checkpoint (online encoder, decoders, target) feeds the
    32 px linear-probe config as it is: ``init_cfg`` with prefix
    ``backbone.`` loads exactly the online encoder into the stock
    ``VisionTransformer``."""
    cfg = Config.fromfile(
        f'{ROOT}/configs/fmnist/cmae_vit-tiny-p4_1xb256-5e_fmnist.py')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.loss(_views(B=4), None)  # the target now differs from init
    ckpt = str(tmp_path / 'cmae.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    lin = Config.fromfile(
        f'{ROOT}/configs/fmnist/vit-tiny-p4-32px_linear-10e_fmnist.py')
    backbone_cfg = copy.deepcopy(lin.model.backbone)
    backbone_cfg.init_cfg.checkpoint = ckpt
    stock = MODELS.build(backbone_cfg)
    assert type(stock).__name__ == 'VisionTransformer'
    stock.init_weights()
    ours = model.backbone.state_dict()
    for key, value in stock.state_dict().items():
        assert torch.equal(value, ours[key]), key


# ------------------------------------------------- linear probe (features)
def test_linear_probe_on_features_learns_a_separable_problem():
    """Linearly separable features: the probe reaches ~100 %; shuffled
    labels: chance (the probe does not read the test labels)."""
    from mmsbam.evaluation import linear_probe_top1
    g = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(5, 16, generator=g)
    y = torch.randint(0, 5, (2000, ), generator=g)
    x = centres[y] + torch.randn(2000, 16, generator=g)
    train, test = (x[:1500], y[:1500]), (x[1500:], y[1500:])
    assert linear_probe_top1(train, test, epochs=3) > 99
    shuffled = (x[:1500], y[:1500][torch.randperm(1500, generator=g)])
    assert linear_probe_top1(shuffled, test, epochs=3) < 40
    with pytest.raises(ValueError, match='epochs'):
        linear_probe_top1(train, test, epochs=1)


def test_fmnist_twin_differs_only_in_the_backbone_type():
    from test_configs import flatten
    a, b = (flatten(Config.fromfile(
        f'{ROOT}/configs/fmnist/{name}_vit-tiny-p4_1xb256-5e_fmnist.py')
        .to_dict()) for name in ('cmae', 'cmae-sbam'))
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed == {'model.backbone.type'}
    assert b['model.backbone.type'] == 'SBAMCMAEViT'
