"""The ``BootMAE`` algorithm: schedules at the official epochs, the EMA
target step by step, the bootstrapped target, the SBAM twin (one config
line, salience sources, warm-up fallback, AMR), Runner training with an
exact resume, and the encoder loading into the stock ViT."""
import copy
import glob
import os.path as osp
import random

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub

from mmpretrain.registry import MODELS

from conftest import ROOT
from mmsbam.masking import block_attention_salience, find_maskers
from mmsbam.models.bootmae import bootmae_ema_decay, bootmae_feature_weight

ARCH = dict(embed_dims=32, num_layers=2, num_heads=4,
            feedforward_channels=64)
TINY_MASKS = dict(type='BootMAEMaskGenerator', num_block=30, num_masked=37,
                  min_block=4, max_block=15, max_roll=1)
PLAIN = 'configs/fmnist/bootmae_vit-tiny-p4_1xb256-5e_fmnist.py'
TWIN = 'configs/fmnist/bootmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py'
RECIPE = 'configs/bootmae/bootmae_vit-base-p16_8xb256-amp-coslr-800e_in1k.py'


def _model(backbone_type='BootMAEViT', **backbone):
    cfg = dict(
        type='BootMAE',
        backbone=dict(type=backbone_type, arch=ARCH, img_size=28,
                      patch_size=4, patch_cfg=dict(in_channels=1),
                      bootmae_mask_generator=TINY_MASKS, **backbone),
        neck=dict(type='BootMAENeck', num_patches=49, patch_size=4,
                  in_chans=1, embed_dim=32, decoder_embed_dim=24,
                  decoder_depth=1, decoder_num_heads=4),
        head=dict(type='BootMAEHead', patch_size=4),
        ema_decays=(0.9, 0.99, 0.999), ema_epochs=(2, 2),
        feature_ramp_epochs=2)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


@pytest.fixture
def epoch():
    hub = MessageHub.get_instance('test_bootmae')
    hub.update_info('epoch', 0)
    return hub


def _images(seed=0, B=4):
    return torch.randn(B, 1, 28, 28, generator=torch.Generator().manual_seed(
        seed))


# ------------------------------------------------------------- schedules
@pytest.mark.parametrize('e, d', [(0, 0.999), (50, 0.99945), (100, 0.9999),
                                  (250, 0.999945), (400, 0.99999),
                                  (800, 0.99999)])
def test_ema_decay_official_values(e, d):
    assert bootmae_ema_decay(e) == pytest.approx(d, abs=1e-12)


def test_ema_decay_every_epoch_matches_the_official_formula():
    """utils.adjust_ema_momentum, written out, at every epoch, with and
    without --model_ema_dynamic."""
    for e in range(801):
        if e < 100:
            ref = 0.999 + e / 100 * (0.9999 - 0.999)
            static = ref
        else:
            ref = 0.9999 + min(300, e - 100) / 300 * (0.99999 - 0.9999)
            static = 0.9999
        assert bootmae_ema_decay(e) == pytest.approx(ref, abs=1e-15)
        assert bootmae_ema_decay(e, dynamic=False) == pytest.approx(
            static, abs=1e-15)


def test_feature_weight_official_ramp():
    for e in range(801):
        fw = 1.0 * (1 + e) / 801
        ref = min(fw * 4, 1.0)
        assert bootmae_feature_weight(e) == pytest.approx(ref, rel=1e-12)
    assert bootmae_feature_weight(0) == pytest.approx(0.005, abs=1e-4)
    assert bootmae_feature_weight(199) == pytest.approx(0.9988, abs=1e-4)
    assert bootmae_feature_weight(200) == 1.0


# --------------------------------------------------------- EMA and target
def test_ema_teacher_step_by_step(epoch):
    """Step 0 copies the student; then ema = d(e) ema + (1 - d(e)) student
    with d of the epoch the MessageHub publishes."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    history = []
    for step, e in enumerate([0, 0, 1, 1, 4]):
        epoch.update_info('epoch', e)
        prev = {k: v.clone() for k, v in
                model.teacher.module.state_dict().items()}
        student = {k: v.clone()
                   for k, v in model.backbone.state_dict().items()}
        losses = model.loss(_images(step), [])
        d = model.ema_decay(e)
        history.append(d)
        for k, v in model.teacher.module.state_dict().items():
            if not v.is_floating_point():
                continue
            expected = student[k] if step == 0 else \
                d * prev[k] + (1 - d) * student[k]
            torch.testing.assert_close(v, expected, rtol=1e-6, atol=1e-7)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert history == pytest.approx([0.9, 0.9, 0.945, 0.945, 0.999])
    assert model.teacher.momentum == pytest.approx(1 - 0.999)


def test_teacher_target_is_last_block_without_final_norm(epoch):
    model = _model()
    model.loss(_images(), [])  # copies the student into the teacher
    teacher = model.teacher.module
    x = _images(1)
    target, last_input = teacher.forward_target(x)
    tokens = teacher.patch_embed(x)[0]
    h = torch.cat([teacher.cls_token.expand(4, -1, -1), tokens], 1) + \
        teacher.pos_embed
    for layer in teacher.layers:
        h = layer(h)
    torch.testing.assert_close(target, h[:, 1:])
    assert not torch.allclose(target, teacher.ln1(h)[:, 1:])
    assert last_input.shape == (4, 50, 32)


def test_feature_loss_uses_the_teacher_target_and_no_grad_reaches_it(epoch):
    model = _model()
    captured = {}
    original = model.head.loss

    def spy(pixels, feats, images, target, mask, lam):
        captured.update(target=target, lam=lam, mask=mask)
        return original(pixels, feats, images, target, mask, lam)

    model.head.loss = spy
    epoch.update_info('epoch', 1)
    losses = model.loss(_images(), [])
    sum(losses.values()).backward()
    expected, _ = model.teacher.module.forward_target(_images())
    torch.testing.assert_close(captured['target'], expected)
    assert captured['lam'] == pytest.approx(1.0)  # (1 + 1) / 2 ramp
    assert (captured['mask'].sum(1) == 37).all()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.teacher.training is False and model.backbone.training
    assert model.backbone.patch_embed.projection.weight.grad is not None


def test_mask_ratio_must_agree_with_the_generator():
    with pytest.raises(ValueError, match='num_masked'):
        _model(mask_ratio=0.5)


def test_bad_schedules_are_refused():
    cfg = dict(type='BootMAE', backbone=dict(type='BootMAEViT'),
               neck=dict(type='BootMAENeck'), head=dict(type='BootMAEHead'))
    for key, value, word in [('ema_decays', (0.99, 0.9, 0.999), 'ema_decays'),
                             ('ema_epochs', (0, 3), 'ema_epochs'),
                             ('feature_weight', -1, 'feature_weight'),
                             ('feature_ramp_epochs', 0, 'feature_ramp')]:
        with pytest.raises(ValueError, match=word):
            MODELS.build(dict(cfg, **{key: value}))


# ------------------------------------------------------------ SBAM twin
def test_sbam_twin_masks_the_same_count_most_salient_first(epoch):
    model = _model('SBAMBootMAEViT', noise_scale=0.)
    losses = model.loss(_images(), [])
    record = model.backbone.masker.last_masking
    assert (record.mask.sum(1) == 37).all() and record.sbam_enabled
    # noise 0: the 37 most salient tokens are masked
    top = record.salience.topk(37, dim=1).indices
    assert torch.equal(record.mask.gather(1, top), torch.ones(4, 37))
    assert all(torch.isfinite(v) for v in losses.values())
    # the EMA copy's masker never masks, so hooks see one masker
    assert list(find_maskers(model)) == ['backbone.masker']


def test_teacher_salience_is_the_ema_encoders_attention(epoch):
    model = _model('SBAMBootMAEViT', salience_source='teacher',
                   noise_scale=0.)
    x = _images()
    model.loss(x, [])
    record = model.backbone.masker.last_masking
    _, last_input = model.teacher.module.forward_target(x)
    expected = block_attention_salience(model.teacher.module.layers[-1],
                                        last_input, 'all')
    torch.testing.assert_close(record.salience, expected)
    with pytest.raises(ValueError, match='teacher'):
        model.backbone(x)  # the salience must be passed


def test_warm_up_falls_back_to_bootmae_masks(epoch):
    """SBAM off (SBAMHook's warm-up): BootMAE's own blocks + roll, drawn
    from the same random streams as the plain model."""
    plain, twin = _model(), _model('SBAMBootMAEViT')
    twin.backbone.masker.sbam_enabled = False
    masks = []
    for model in (plain, twin):
        random.seed(3)
        torch.manual_seed(3)
        _, _, mask, _ = model.backbone(_images())
        masks.append(mask)
    assert torch.equal(masks[0], masks[1])
    record = twin.backbone.masker.last_masking
    assert record.sbam_enabled is False and torch.equal(record.mask, masks[1])


def test_batch_amr_works_and_per_image_amr_is_refused(epoch):
    model = _model('SBAMBootMAEViT', amr=dict(mode='batch', ratio_var=0.1))
    losses = model.loss(_images(), [])
    counts = model.backbone.masker.last_masking.mask.sum(1)
    assert (counts == counts[0]).all()
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match='cross-attend'):
        _model('SBAMBootMAEViT', amr=dict(mode='sample'))


def _flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f'{prefix}{k}.'))
        else:
            out[prefix + k] = v
    return out


@pytest.mark.parametrize('plain, twin', [
    (PLAIN, TWIN),
    (RECIPE, RECIPE.replace('_in1k.py', '_in1k_sbam.py'))])
def test_twin_differs_by_the_backbone_type_only(plain, twin):
    a = _flat(Config.fromfile(osp.join(ROOT, plain)).to_dict())
    b = _flat(Config.fromfile(osp.join(ROOT, twin)).to_dict())
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert changed == {'model.backbone.type'}
    assert b['model.backbone.type'] == 'SBAMBootMAEViT'


# ----------------------------------------------------- Runner and resume
def _runner_cfg(config, work_dir, epochs, resume=None):
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(dict(
        work_dir=str(work_dir),
        train_dataloader=dict(batch_size=8, dataset=dict(indices=16)),
        train_cfg=dict(max_epochs=epochs),
        default_hooks=dict(logger=dict(interval=1),
                           checkpoint=dict(interval=1, max_keep_ckpts=3)),
        randomness=dict(seed=0),
        model=dict(ema_epochs=(1, 1), feature_ramp_epochs=2,
                   neck=dict(decoder_depth=1))))
    if resume is not None:
        cfg.resume = True
        cfg.load_from = str(resume)
    return cfg


@pytest.mark.parametrize('config', [PLAIN, TWIN])
def test_runner_trains_and_resumes_bit_exactly(config, tmp_path,
                                               monkeypatch, fashion_mnist):
    """Two epochs of two iterations through MMEngine's Runner; a run
    resumed after epoch 1 ends with the same weights, EMA target and EMA
    step count, to the last bit (masks from Python's random and torch's
    generator, restored by RandomStateHook)."""
    from mmengine.runner import Runner
    monkeypatch.chdir(ROOT)
    full = Runner.from_cfg(_runner_cfg(config, tmp_path / 'full', 2))
    full.train()
    assert full.iter == 4
    scalars = full.message_hub.log_scalars
    for key in ('train/loss', 'train/loss_pixel', 'train/loss_feature'):
        assert torch.isfinite(torch.tensor(scalars[key].current()))
    resumed = Runner.from_cfg(_runner_cfg(
        config, tmp_path / 'resumed', 2, resume=tmp_path / 'full' /
        'epoch_1.pth'))
    resumed.train()
    log, = glob.glob(str(tmp_path / 'resumed' / '*' / '*.log'))
    text = open(log).read()
    assert 'resumed epoch: 1, iter: 2' in text
    assert 'RandomStateHook: restored the random states' in text
    a = torch.load(tmp_path / 'full' / 'epoch_2.pth',
                   map_location='cpu')['state_dict']
    b = torch.load(tmp_path / 'resumed' / 'epoch_2.pth',
                   map_location='cpu')['state_dict']
    assert a.keys() == b.keys()
    assert any(k.startswith('teacher.module.') for k in a)
    assert int(a['teacher.steps']) == 4
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_pretrained_encoder_loads_into_the_stock_vit_and_linear_config(
        tmp_path, epoch):
    """The student's backbone.* keys load strictly into the stock
    VisionTransformer, and into the linear benchmark's 10-block probe with
    only its fresh LayerNorm (ln2) left unloaded."""
    from mmengine.runner import load_checkpoint
    model = _model()
    model.loss(_images(), [])
    path = tmp_path / 'bootmae.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    stock = MODELS.build(dict(type='VisionTransformer', arch=ARCH,
                              img_size=28, patch_size=4, in_channels=1,
                              out_type='raw'))
    state = {k[len('backbone.'):]: v for k, v in model.state_dict().items()
             if k.startswith('backbone.')}
    stock.load_state_dict(state, strict=True)
    x = _images(2)
    torch.testing.assert_close(stock(x)[0], model.backbone(x, mask=False)[0])

    linear = Config.fromfile(osp.join(
        ROOT, 'configs/bootmae/benchmarks/'
        'vit-base-p16_8xb2048-linear-coslr-90e_in1k.py')).model.backbone
    assert linear.type == 'VisionTransformer'
    probe = copy.deepcopy(linear.to_dict())
    probe.update(arch=dict(ARCH, num_layers=1), img_size=28, patch_size=4,
                 in_channels=1, frozen_stages=1, init_cfg=None)
    vit = MODELS.build(probe)
    ckpt = load_checkpoint(vit, str(path), revise_keys=[(r'^backbone\.', '')],
                           strict=False)
    missing = set(vit.state_dict()) - {
        k[len('backbone.'):] for k in ckpt['state_dict']}
    assert missing == {'ln2.weight', 'ln2.bias'}
    assert not vit.ln2.weight.requires_grad  # frozen identity LayerNorm
    feats = vit(x)[0]
    ref = model.backbone.layers[0](torch.cat(
        [(model.backbone.cls_token + model.backbone.pos_embed[:, :1])
         .expand(4, -1, -1), model.backbone.patch_tokens(x)], 1))
    torch.testing.assert_close(
        feats, F.layer_norm(ref[:, 1:].mean(1), (32, ), eps=1e-6))


def test_pretrained_encoder_loads_into_the_fine_tune_config(tmp_path, epoch):
    """The fine-tune benchmark's stock ViT (layer scale 1e-5, mean pooling
    + fc_norm, no final norm) takes every encoder tensor; only the layer
    scales and the fc_norm it adds start fresh."""
    from mmengine.runner import load_checkpoint
    model = _model()
    path = tmp_path / 'bootmae.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/bootmae/benchmarks/'
        'vit-base-p16_8xb256-coslr-100e_in1k.py')).model.backbone.to_dict()
    assert cfg['type'] == 'VisionTransformer'
    assert cfg['layer_scale_init_value'] == 1e-5
    cfg.update(arch=ARCH, img_size=28, patch_size=4, in_channels=1,
               init_cfg=None)
    vit = MODELS.build(cfg)
    ckpt = load_checkpoint(vit, str(path), revise_keys=[(r'^backbone\.', '')],
                           strict=False)
    loaded = {k[len('backbone.'):] for k in ckpt['state_dict']}
    fresh = set(vit.state_dict()) - loaded
    assert fresh == {'ln2.weight', 'ln2.bias'} | {
        f'layers.{i}.{scale}.weight' for i in range(2)
        for scale in ('attn.gamma1', 'ffn.gamma2')}
