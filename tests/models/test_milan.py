"""SBAMMILANViT: MILAN's ViT with SBAM in place of CLIP-importance masking;
stock MILANPretrainDecoder."""
import copy

import pytest
import torch

from mmpretrain.registry import MODELS
from mmsbam.models import SBAMMILANViT
from sbam_backbone_checks import (assert_exact_counts,
                                  assert_masks_most_salient, build, images,
                                  state_keys)

TINY_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
L = 64


def _cfg(type_='SBAMMILANViT', **kwargs):
    return dict(type=type_, arch=copy.deepcopy(TINY_ARCH), img_size=32,
                patch_size=4, patch_cfg=dict(in_channels=1), **kwargs)


def _mask(ids_restore, K):
    return (ids_restore >= K).float()


@torch.no_grad()
def test_keeps_milans_signature_and_exact_counts():
    backbone = build(_cfg())
    assert isinstance(backbone, SBAMMILANViT)
    x = images(3, 32)
    importance = torch.rand(3, L)  # the CLIP importance: ignored
    latent, ids_restore, ids_keep, ids_dump = backbone(x, importance)
    assert latent.shape == (3, 1 + 16, 32)
    assert ids_keep.shape == (3, 16) and ids_dump.shape == (3, 48)
    # ids_keep then ids_dump is the order that ids_restore inverts
    order = torch.cat([ids_keep, ids_dump], 1)
    assert torch.equal(torch.argsort(order, 1), ids_restore)
    mask = backbone.masker.last_masking.mask
    assert torch.equal(mask, _mask(ids_restore, 16))
    assert_exact_counts(mask, 0.75)
    neck = build(dict(type='MILANPretrainDecoder', num_patches=L,
                      patch_size=4, in_chans=1, embed_dim=32,
                      decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4, predict_feature_dim=8))
    pred = neck(latent, ids_restore, ids_keep, ids_dump)
    assert pred.shape == (3, 1 + L, 8)
    # importance=None: unmasked features, as in stock MILAN
    assert backbone(x, None)[0].shape == (3, 1 + L, 32)


@torch.no_grad()
def test_masked_tokens_are_the_most_salient(np_token_salience):
    backbone = build(_cfg(noise_scale=0))
    x = images(4, 32)
    _, ids_restore, _, _ = backbone(x, torch.rand(4, L))
    tokens = backbone.patch_embed(x)[0] + backbone.pos_embed[:, 1:, :]
    assert_masks_most_salient(tokens, _mask(ids_restore, 16),
                              np_token_salience)


@torch.no_grad()
def test_sbam_off_is_uniform_random_masking():
    """SBAM off: MAE's ``argsort(torch.rand(B, L))``, whatever the salience
    and the importance."""
    backbone = build(_cfg())
    backbone.masker.sbam_enabled = False
    torch.manual_seed(3)
    _, ids_restore, ids_keep, _ = backbone(images(3, 32), torch.rand(3, L))
    torch.manual_seed(3)
    torch.rand(3, L)  # the importance drawn above
    expected = torch.argsort(torch.rand(3, L), dim=1)
    assert torch.equal(ids_keep, expected[:, :16])


def test_state_dict_keys_are_the_stock_ones():
    sbam, stock = state_keys(_cfg(), 'MILANViT')
    assert sbam == stock


def test_batch_amr_works_and_per_image_amr_is_refused():
    backbone = build(_cfg(amr=dict(ratio_var=0.15, delta=0.3,
                                   mode='batch')))
    with torch.no_grad():
        backbone(images(4, 32), torch.rand(4, L))
    ratio = backbone.masker.last_masking.ratio
    assert (ratio == ratio[0]).all()
    assert_exact_counts(backbone.masker.last_masking.mask, ratio)
    with pytest.raises(ValueError, match=r"SBAMMILANViT.*mode='batch'"):
        MODELS.build(_cfg(amr=dict(mode='sample')))
