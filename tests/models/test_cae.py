"""SBAM for CAE, built with the shipped config's model, backbone and neck
types: the momentum teacher encodes the complement of the student's SBAM
mask and never remasks, whether or not ``init_weights`` froze it; AMR per
batch trains through the stock loss with mask tokens as many as the
batch's masked count; what CAE cannot take is refused at build time."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmsbam  # noqa: F401
from conftest import ROOT
from mmsbam.masking import adaptive_mask_ratio, find_maskers
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

CONFIG = 'configs/cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py'
TINY = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
VIT = dict(arch=TINY, img_size=28, patch_size=4, in_channels=1)
PIPELINE_COUNT = 20  # of 49 patches
BATCH_AMR = dict(mask_ratio=0.4,
                 amr=dict(ratio_var=0.3, delta=0.2, mode='batch'))


def shipped_types() -> dict:
    """``model.type``, ``backbone.type`` and ``neck.type`` of the shipped
    SBAM CAE config."""
    model = Config.fromfile(osp.join(ROOT, CONFIG)).model
    return dict(model=model.type, backbone=model.backbone.type,
                neck=model.neck.type)


def cae_model(init_weights: bool = True, masker: dict = None,
              **types) -> torch.nn.Module:
    types = dict(shipped_types(), **types)
    backbone = dict(type=types['backbone'], layer_scale_init_value=0.1,
                    **VIT)
    if masker is not None:
        backbone['masker'] = masker
    model = MODELS.build(dict(
        type=types['model'],
        backbone=backbone,
        neck=dict(type=types['neck'], num_classes=64, embed_dims=32,
                  num_heads=4, regressor_depth=1, decoder_depth=1,
                  mask_tokens_num=PIPELINE_COUNT, layer_scale_init_value=0.1),
        head=dict(type='CAEHead', loss=dict(type='CAELoss', lambd=2)),
        target_generator=dict(type='DALL-E', n_hid=8, input_channels=1,
                              vocab_size=64),
        data_preprocessor=dict(type='TwoNormDataPreprocessor', mean=[0.],
                               std=[1.], second_mean=[0.], second_std=[1.])))
    if init_weights:
        model.init_weights()
    return model


def pipeline_samples(batch: int, seed: int = 0) -> list:
    """Data samples with BEiT-like pipeline masks of PIPELINE_COUNT."""
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        mask = torch.zeros(49, dtype=torch.long)
        mask[torch.randperm(49, generator=g)[:PIPELINE_COUNT]] = 1
        sample = DataSample()
        sample.set_mask(mask.view(7, 7))
        samples.append(sample)
    return samples


def images(batch: int, seed: int = 0) -> list:
    """Images of different contrast (so their salience differs) and the
    56 px DALL-E input."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(batch, 1, 1, 1, generator=g) * 4 + 0.1
    return [torch.randn(batch, 1, 28, 28, generator=g) * scale,
            torch.randn(batch, 1, 56, 56, generator=g)]


def teacher_input(model) -> dict:
    """Records the mask the teacher's forward receives."""
    seen = {}

    def record(module, args):
        seen['mask'] = args[1].clone()

    model.teacher.register_forward_pre_hook(record)
    return seen


@pytest.mark.parametrize('init_weights', [True, False])
def test_teacher_encodes_the_complement_and_never_remasks(init_weights):
    """Without ``init_weights`` the teacher's parameters still require
    grad, like the student's; it must not remask either way."""
    model = cae_model(init_weights=init_weights)
    assert any(p.requires_grad for p in model.teacher.parameters()) == \
        (not init_weights)
    assert list(find_maskers(model)) == ['backbone.masker']
    seen = teacher_input(model)
    samples = pipeline_samples(2)
    pipeline = torch.stack([s.mask for s in samples]).flatten(1).bool()
    model.loss(images(2), samples)
    sbam = model.backbone.masker.last_masking.mask.bool()
    assert not torch.equal(sbam, pipeline)
    assert torch.equal(seen['mask'], ~sbam)
    assert model.teacher.masker.last_masking is None


def test_frozen_student_still_remasks():
    """The student is marked as such: frozen parameters (e.g. all stages
    frozen) do not turn its SBAM masking off."""
    model = cae_model()
    model.backbone.requires_grad_(False)
    samples = pipeline_samples(2)
    pipeline = torch.stack([s.mask for s in samples]).flatten(1).bool()
    seen = teacher_input(model)
    model.loss(images(2), samples)
    assert model.backbone.masker.last_masking is not None
    assert not torch.equal(~seen['mask'], pipeline)


def test_masked_forward_outside_sbam_cae_is_refused():
    """The stock CAE cannot mark its teacher: SBAM's backbone refuses it
    with the fix in the message."""
    model = cae_model(model='CAE', neck='CAENeck')
    with pytest.raises(ValueError, match="model.type='SBAMCAE'"):
        model.loss(images(2), pipeline_samples(2))


def test_sbam_cae_refuses_a_stock_backbone():
    with pytest.raises(ValueError, match='SBAMCAEPretrainViT'):
        cae_model(backbone='CAEPretrainViT')


def test_per_image_amr_is_refused_at_build_time():
    masker = dict(BATCH_AMR, amr=dict(BATCH_AMR['amr'], mode='sample'))
    with pytest.raises(ValueError, match="mode='batch'"):
        cae_model(masker=masker)


def test_batch_amr_with_the_stock_neck_is_refused_at_build_time():
    with pytest.raises(ValueError, match="neck.type='SBAMCAENeck'"):
        cae_model(masker=BATCH_AMR, neck='CAENeck')


def test_batch_amr_trains_steps_with_counts_that_vary_by_batch():
    """Four optimizer steps through the stock loss: each batch's count is
    the pipeline's moved by AMR's batch offset, equal within the batch,
    different between batches; the neck predicts every masked token and
    the teacher encodes the complement."""
    torch.manual_seed(0)
    model = cae_model(masker=BATCH_AMR)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    seen = teacher_input(model)
    preds = []
    model.neck.register_forward_hook(
        lambda module, args, out: preds.append(out[1].shape[1]))
    counts = []
    for step in range(4):
        losses = model.loss(images(8, seed=step), pipeline_samples(8, step))
        loss = losses['loss']
        assert torch.isfinite(loss)
        optim.zero_grad()
        loss.backward()
        optim.step()
        record = model.backbone.masker.last_masking
        mask = record.mask
        per_image = mask.sum(1).long()
        assert per_image.unique().numel() == 1  # one count per batch
        amr = adaptive_mask_ratio(record.salience, 0.4, 0.3, 0.2).mean()
        ratio = PIPELINE_COUNT / 49 + amr - 0.4
        assert int(per_image[0]) == 49 - int(49 * (1 - ratio))
        assert preds[-1] == int(per_image[0])
        assert torch.equal(seen['mask'], ~mask.bool())
        counts.append(int(per_image[0]))
    assert len(set(counts)) > 1, counts


def test_neck_equals_the_stock_neck_at_the_stock_count():
    """Same parameters, same outputs when the batch masks
    ``mask_tokens_num`` tokens."""
    cfg = dict(num_classes=64, embed_dims=32, num_heads=4, regressor_depth=1,
               decoder_depth=1, mask_tokens_num=PIPELINE_COUNT,
               layer_scale_init_value=0.1)
    stock = MODELS.build(dict(type='CAENeck', **cfg))
    stock.init_weights()
    ours = MODELS.build(dict(type='SBAMCAENeck', **cfg))
    ours.load_state_dict(stock.state_dict(), strict=True)
    args = (torch.randn(2, 29, 32), torch.randn(2, PIPELINE_COUNT, 32),
            torch.randn(2, 29, 32))
    for a, b in zip(ours(*args), stock(*args)):
        assert torch.equal(a, b)
    logits, latent = ours(torch.randn(2, 24, 32), torch.randn(2, 25, 32),
                          torch.randn(2, 24, 32))
    assert logits.shape == (2, 25, 64) and latent.shape == (2, 25, 32)


def test_checkpoint_loads_into_the_stock_cae():
    """SBAMCAE, its backbone and neck add no parameter: the whole model's
    state dict loads (strict) into the stock CAE."""
    ours = cae_model(masker=BATCH_AMR)
    stock = cae_model(model='CAE', backbone='CAEPretrainViT', neck='CAENeck')
    stock.load_state_dict(ours.state_dict(), strict=True)
