"""SBAMiTPNHiViT: iTPN's HiViT with SBAM, pixel target (units dropped, MAE
style) and CLIP target (the pipeline's mask rewritten in place)."""
import pytest
import torch

from mmsbam.models import SBAMiTPNHiViT
from mmsbam.masking import random_masking
from sbam_backbone_checks import (assert_exact_counts,
                                  assert_masks_most_salient,
                                  assert_padding_ignores_masked_content,
                                  build, images, state_keys)

ARCH = dict(embed_dims=32, depths=[1, 1, 2], num_heads=4)
L = 16  # (64 / 16) ** 2 units


def _cfg(type_='SBAMiTPNHiViT', **kwargs):
    return dict(type=type_, arch=dict(ARCH), img_size=64, patch_size=16,
                in_chans=1, **kwargs)


def _neck():
    return build(dict(type='iTPNPretrainDecoder', num_patches=L,
                      patch_size=16, in_chans=1, embed_dim=32, fpn_dim=16,
                      decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4))


def _pipeline_mask(B, count=6):
    """A BEiT-style pipeline mask (B, 4, 4) with ``count`` cells per image."""
    mask = torch.zeros(B, L, dtype=torch.long)
    mask[:, :count] = 1
    return mask.view(B, 4, 4)


@torch.no_grad()
def test_pixel_masks_whole_units_exactly_the_ratio():
    backbone = build(_cfg())
    assert isinstance(backbone, SBAMiTPNHiViT)
    outs, mask, ids_restore = backbone(images(3, 64))
    assert [o.shape[:2] for o in outs] == [(3, 4)] * 3  # 4 kept units
    assert_exact_counts(mask, 0.75)
    assert _neck()(outs, ids_restore).shape == (3, L, 16 * 16)


@torch.no_grad()
def test_clip_keeps_the_pipeline_count_and_writes_its_mask_in_place():
    backbone = build(_cfg(reconstruction_type='clip'))
    mask = _pipeline_mask(3)
    outs = backbone(images(3, 64), mask)
    assert outs[-1].shape == (3, L, 32)
    assert mask.dtype == torch.long
    assert torch.equal(mask.flatten(1).float(),
                       backbone.masker.last_masking.mask)
    assert_exact_counts(backbone.masker.last_masking.mask, 6 / 16)


@torch.no_grad()
def test_clip_refuses_a_pipeline_mask_that_is_not_0_1():
    backbone = build(_cfg(reconstruction_type='clip'))
    mask = _pipeline_mask(2) * 3  # values 0 and 3
    with pytest.raises(ValueError, match=r'0/1.*3'):
        backbone(images(2, 64), mask)


@pytest.mark.parametrize('target', ['pixel', 'clip'])
@torch.no_grad()
def test_masked_units_are_the_most_salient(target, np_token_salience):
    backbone = build(_cfg(noise_scale=0, reconstruction_type=target))
    x = images(4, 64)
    backbone(x, _pipeline_mask(4) if target == 'clip' else True)
    tokens = backbone.patch_embed(x).mean(dim=(2, 3))
    assert_masks_most_salient(tokens, backbone.masker.last_masking.mask,
                              np_token_salience)


@torch.no_grad()
def test_sbam_off_is_the_stock_random_masking():
    sbam, stock = build(_cfg()), build(_cfg('iTPNHiViT'))
    sbam.load_state_dict(stock.state_dict())
    sbam.masker.sbam_enabled = False
    x = images(3, 64)
    torch.manual_seed(1)
    (ours, *_), *rest = sbam(x)
    torch.manual_seed(1)
    (theirs, *_), *rest_stock = stock(x)
    torch.testing.assert_close(ours, theirs)
    for a, b in zip(rest, rest_stock):
        assert torch.equal(a, b)


@torch.no_grad()
def test_clip_sbam_off_is_random_at_the_pipeline_count():
    backbone = build(_cfg(reconstruction_type='clip'))
    backbone.masker.sbam_enabled = False
    mask = _pipeline_mask(3)
    torch.manual_seed(2)
    backbone(images(3, 64), mask)
    torch.manual_seed(2)
    expected = random_masking(torch.zeros(3, L), torch.full((3, ), 6 / 16))
    assert torch.equal(mask.flatten(1).float(), expected.mask)


@pytest.mark.parametrize('target', ['pixel', 'clip'])
def test_state_dict_keys_are_the_stock_ones(target):
    sbam, stock = state_keys(_cfg(reconstruction_type=target), 'iTPNHiViT')
    assert sbam == stock


@torch.no_grad()
def test_pixel_per_image_amr_equals_each_image_alone():
    """Padded batch == every image encoded and decoded on its own."""
    backbone = build(_cfg(noise_scale=0, amr=dict(ratio_var=0.2, delta=0.3)))
    neck = _neck()
    x = images(6, 64)
    outs, mask, ids_restore = backbone(x)
    record = backbone.masker.last_masking
    assert record.masking.padded
    assert_exact_counts(mask, record.ratio)
    pred = neck(outs, ids_restore)
    for b in range(len(x)):
        outs_b, mask_b, ids_b = backbone(x[b:b + 1])
        assert torch.equal(mask_b[0], mask[b])
        n = outs_b[-1].shape[1]
        torch.testing.assert_close(outs[-1][b, :n], outs_b[-1][0],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pred[b], neck(outs_b, ids_b)[0],
                                   atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_pixel_padded_slots_carry_nothing_of_the_masked_units(monkeypatch):
    """Every returned level (the stem levels for the iTPN pyramid and the
    main stage) is zero-padded like ``SBAMViT``'s encoder input."""
    backbone = build(_cfg(amr=dict(ratio_var=0.2, delta=0.3)))
    assert_padding_ignores_masked_content(backbone, images(6, 64), 16,
                                          monkeypatch)
    # the main stage gets zeros at padded slots (no masked unit's position
    # embedding either), as SBAMViT's encoder does
    seen = []
    first_main = backbone.blocks[-backbone.num_main_blocks]
    first_main.norm1.register_forward_pre_hook(
        lambda module, args: seen.append(args[0]))
    backbone(images(6, 64))
    slots = backbone.masker.last_masking.masking.visible_slots()
    assert not slots.all()
    assert torch.equal(seen[0][~slots], torch.zeros_like(seen[0][~slots]))
    assert (seen[0][slots].abs().sum(-1) > 0).all()


@torch.no_grad()
def test_clip_per_image_amr_moves_the_pipeline_count_by_amr():
    backbone = build(_cfg(reconstruction_type='clip', noise_scale=0,
                          amr=dict(ratio_var=0.2, delta=0.3)))
    x = images(6, 64)
    mask = _pipeline_mask(6)
    outs = backbone(x, mask)
    record = backbone.masker.last_masking
    offset = backbone.masker.amr(record.salience) - 0.75
    torch.testing.assert_close(record.ratio, 6 / 16 + offset)
    assert len(set(mask.flatten(1).sum(1).tolist())) > 1
    assert_exact_counts(record.mask, record.ratio)
    for b in range(len(x)):  # no padding: each image alone gives the same
        mask_b = _pipeline_mask(1)
        outs_b = backbone(x[b:b + 1], mask_b)
        assert torch.equal(mask_b[0], mask[b])
        torch.testing.assert_close(outs[-1][b], outs_b[-1][0], atol=1e-5,
                                   rtol=1e-5)


def test_clip_without_a_pipeline_mask_is_refused():
    backbone = build(_cfg(reconstruction_type='clip'))
    with pytest.raises(ValueError, match='pipeline'):
        backbone(images(1, 64))
