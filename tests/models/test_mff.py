"""SBAMMFFViT: MFF's ViT with SBAM; stock MFF neck (MAEPretrainDecoder)."""
import copy

import pytest
import torch

from mmpretrain.models import VisionTransformer
from mmpretrain.registry import MODELS
from mmsbam.models import SBAMMFFViT
from sbam_backbone_checks import (assert_exact_counts,
                                  assert_masks_most_salient,
                                  assert_padding_ignores_masked_content,
                                  build, images, state_keys)

TINY_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
L = 64  # (32 / 4) ** 2


def _cfg(type_='SBAMMFFViT', **kwargs):
    return dict(type=type_, arch=copy.deepcopy(TINY_ARCH), img_size=32,
                patch_size=4, out_indices=[0, 1],
                patch_cfg=dict(in_channels=1), **kwargs)


def _tokens(backbone, x):
    return backbone.patch_embed(x)[0] + backbone.pos_embed[:, 1:, :]


@torch.no_grad()
def test_masks_exactly_the_ratio_and_returns_the_mff_tuple():
    backbone = build(_cfg())
    assert isinstance(backbone, SBAMMFFViT)
    latent, mask, ids_restore, weights = backbone(images(3, 32))
    assert latent.shape == (3, 1 + 16, 32) and weights.shape == (2, )
    assert ids_restore.shape == (3, L)
    assert_exact_counts(mask, 0.75)


@torch.no_grad()
def test_masked_tokens_are_the_most_salient(np_token_salience):
    backbone = build(_cfg(noise_scale=0))
    x = images(4, 32)
    _, mask, _, _ = backbone(x)
    assert_masks_most_salient(_tokens(backbone, x), mask, np_token_salience)


@torch.no_grad()
def test_sbam_off_is_the_stock_random_masking():
    sbam, stock = build(_cfg()), build(_cfg('MFFViT'))
    sbam.load_state_dict(stock.state_dict())
    sbam.masker.sbam_enabled = False
    x = images(3, 32)
    torch.manual_seed(1)
    ours = sbam(x)
    torch.manual_seed(1)
    theirs = stock(x)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('flag', [None, False])
@torch.no_grad()
def test_unmasked_forward_equals_stock(flag):
    """``mask=None`` or ``False`` extracts the features of the unmasked
    image (``VisionTransformer.forward``), as the stock docstring says and
    ``SBAMViT`` does. The stock ``MFFViT.forward`` masks for both: its
    ``mask is None or False`` test sends ``False`` down the masked branch,
    and ``None`` to ``MAEViT.forward(x)``, whose default masks."""
    sbam = build(_cfg())
    stock = build(_cfg(type_='MFFViT'), seed=5)
    stock.load_state_dict(sbam.state_dict(), strict=True)
    x = images(2, 32)
    ours = sbam(x, mask=flag)
    ref = VisionTransformer.forward(stock, x)
    assert len(ours) == len(ref) == 2  # out_indices [0, 1]
    for a, b in zip(ours, ref):
        assert a.shape == (2, 1 + L, 32)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_state_dict_keys_are_the_stock_ones():
    sbam, stock = state_keys(_cfg(), 'MFFViT')
    assert sbam == stock


@torch.no_grad()
def test_per_image_amr_equals_each_image_alone():
    """Padded batch == every image encoded and decoded on its own."""
    backbone = build(_cfg(noise_scale=0, amr=dict(ratio_var=0.15,
                                                  delta=0.3)))
    neck = build(dict(type='MAEPretrainDecoder', num_patches=L,
                      patch_size=4, in_chans=1, embed_dim=32,
                      decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4))
    x = images(6, 32)
    latent, mask, ids_restore, _ = backbone(x)
    assert backbone.masker.last_masking.masking.padded
    assert_exact_counts(mask, backbone.masker.last_masking.ratio)
    pred = neck(latent, ids_restore)
    for b in range(len(x)):
        lat_b, mask_b, ids_b, _ = backbone(x[b:b + 1])
        assert torch.equal(mask_b[0], mask[b])
        n = lat_b.shape[1]
        torch.testing.assert_close(latent[b, :n], lat_b[0], atol=1e-5,
                                   rtol=1e-5)
        torch.testing.assert_close(pred[b], neck(lat_b, ids_b)[0],
                                   atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_padded_slots_carry_nothing_of_the_masked_tokens(monkeypatch):
    backbone = build(_cfg(amr=dict(ratio_var=0.15, delta=0.3)))
    assert_padding_ignores_masked_content(backbone, images(6, 32), 4,
                                          monkeypatch)


def test_masking_errors_name_the_argument():
    with pytest.raises(ValueError, match='not both'):
        MODELS.build(_cfg(noise_scale=0.1, masker=dict(type='SalienceMasker')))
    with pytest.raises(ValueError, match='foo'):
        MODELS.build(_cfg(amr=dict(foo=1)))
    with pytest.raises(ValueError, match='salience_layer'):
        MODELS.build(_cfg(salience_source='attention', salience_layer=2))
