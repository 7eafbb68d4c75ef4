"""SBAMMAEHiViT: MAE's HiViT with SBAM masking of whole 16-px units."""
import pytest
import torch

from mmpretrain.models import HiViT
from mmpretrain.registry import MODELS
from mmsbam.models import SBAMMAEHiViT
from sbam_backbone_checks import (assert_exact_counts,
                                  assert_masks_most_salient, build, images,
                                  state_keys)

ARCH = dict(embed_dims=32, depths=[1, 1, 2], num_heads=4)
L = 16  # (64 / 16) ** 2 units


def _cfg(type_='SBAMMAEHiViT', **kwargs):
    # MAEHiViT takes no in_chans: 3-channel images
    return dict(type=type_, arch=dict(ARCH), img_size=64, patch_size=16,
                **kwargs)


def _unit_tokens(backbone, x):
    """Reference: each unit's patch embedding averaged over its 4 x 4 stem
    patches, from the convolution itself (B, L, C)."""
    conv = backbone.patch_embed.proj(x)  # (B, C, 16, 16) stem patches
    B, C = conv.shape[:2]
    units = conv.view(B, C, 4, 4, 4, 4).permute(0, 2, 4, 3, 5, 1)
    units = backbone.patch_embed.norm(units.reshape(B, L, 16, C))
    return units.mean(2)


@torch.no_grad()
def test_masks_whole_units_exactly_the_ratio():
    backbone = build(_cfg())
    assert isinstance(backbone, SBAMMAEHiViT)
    latent, mask, ids_restore = backbone(images(3, 64, 3))
    assert latent.shape == (3, 4, 32)  # int(16 * 0.25) = 4 kept units
    assert mask.shape == (3, L) and ids_restore.shape == (3, L)
    assert_exact_counts(mask, 0.75)


@pytest.mark.parametrize('flag', [None, False])
@torch.no_grad()
def test_unmasked_forward_equals_stock_hivit(flag):
    """``mask=None``/``False``: HiViT's features of the unmasked image
    (stock ``MAEHiViT`` masks on ``False``). Seven main blocks: the
    stock unmasked forward also tests its out index (main depth - 1) on
    the 6 stem blocks and breaks when it is one of theirs."""
    def cfg(type_):
        return dict(_cfg(type_), arch=dict(ARCH, depths=[1, 1, 7]))

    sbam = build(cfg('SBAMMAEHiViT'))
    stock = build(cfg('MAEHiViT'), seed=5)
    stock.load_state_dict(sbam.state_dict(), strict=True)
    x = images(2, 64, 3)
    ours = sbam(x, mask=flag)
    ref = HiViT.forward(stock, x)
    assert len(ours) == len(ref) > 0
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_masked_units_are_the_most_salient(np_token_salience):
    backbone = build(_cfg(noise_scale=0))
    x = images(4, 64, 3)
    _, mask, _ = backbone(x)
    assert_masks_most_salient(_unit_tokens(backbone, x), mask,
                              np_token_salience)


@torch.no_grad()
def test_sbam_off_is_the_stock_random_masking():
    sbam, stock = build(_cfg()), build(_cfg('MAEHiViT'))
    sbam.load_state_dict(stock.state_dict())
    sbam.masker.sbam_enabled = False
    x = images(3, 64, 3)
    torch.manual_seed(1)
    ours = sbam(x)
    torch.manual_seed(1)
    theirs = stock(x)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_state_dict_keys_are_the_stock_ones():
    sbam, stock = state_keys(_cfg(), 'MAEHiViT')
    assert sbam == stock


def test_batch_amr_works_and_per_image_amr_is_refused():
    backbone = build(_cfg(amr=dict(ratio_var=0.2, delta=0.3, mode='batch')))
    with torch.no_grad():
        _, mask, _ = backbone(images(4, 64, 3))
    assert_exact_counts(mask, backbone.masker.last_masking.ratio)
    with pytest.raises(ValueError, match=r"SBAMMAEHiViT.*mode='batch'"):
        MODELS.build(_cfg(amr=dict(mode='sample')))
    with pytest.raises(ValueError, match='salience_source'):
        MODELS.build(_cfg(salience_source='attention'))
