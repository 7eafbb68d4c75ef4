"""BootMAE's decoders: a decoder layer against a float64 reference of the
official ``Decode_Block`` (12 heads on a width not divisible by 12), the
position embedding on mask tokens only, the injected features, and the
sin-cos embeddings against the MoCo v3 formula."""
import math

import numpy as np
import pytest
import torch

from mmpretrain.registry import MODELS

from mmsbam.models.bootmae.bootmae_neck import BootMAEDecoderLayer


def _ref_attention(x, ctx, qw, kw, vw, qb, vb, pw, pb, heads):
    """softmax(q k^T * hd^-0.5) v per head; key bias 0 (BEiT style)."""
    B, N, _ = x.shape
    hd = qw.shape[0] // heads
    q = (x @ qw.T + qb).reshape(B, N, heads, hd).transpose(0, 2, 1, 3)
    k = (ctx @ kw.T).reshape(B, -1, heads, hd).transpose(0, 2, 1, 3)
    v = (ctx @ vw.T + vb).reshape(B, -1, heads, hd).transpose(0, 2, 1, 3)
    a = q @ k.transpose(0, 1, 3, 2) * hd**-0.5
    a = np.exp(a - a.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    out = (a @ v).transpose(0, 2, 1, 3).reshape(B, N, heads * hd)
    return out @ pw.T + pb


def _ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu)**2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _np(t):
    return t.detach().double().numpy()


def _ref_layer(layer, x, f):
    """x += SelfAttn(norm1 x); x += CrossAttn(norm3 x, norm4 f);
    x += MLP(norm2 x), float64."""
    s, c = layer.attn, layer.cross_attn
    inner = s.q_bias.shape[0]
    qkv = _np(s.qkv.weight)
    h = _ln(x, _np(layer.norm1.weight), _np(layer.norm1.bias))
    x = x + _ref_attention(h, h, qkv[:inner], qkv[inner:2 * inner],
                           qkv[2 * inner:], _np(s.q_bias), _np(s.v_bias),
                           _np(s.proj.weight), _np(s.proj.bias), s.num_heads)
    h = _ln(x, _np(layer.norm3.weight), _np(layer.norm3.bias))
    g = _ln(f, _np(layer.norm4.weight), _np(layer.norm4.bias))
    kv = _np(c.kv.weight)
    x = x + _ref_attention(h, g, _np(c.q.weight), kv[:inner], kv[inner:],
                           _np(c.q_bias), _np(c.v_bias), _np(c.proj.weight),
                           _np(c.proj.bias), c.num_heads)
    h = _ln(x, _np(layer.norm2.weight), _np(layer.norm2.bias))
    fc1, fc2 = layer.mlp[0], layer.mlp[2]
    z = h @ _np(fc1.weight).T + _np(fc1.bias)
    z = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))  # GELU
    return x + z @ _np(fc2.weight).T + _np(fc2.bias)


def test_decoder_layer_matches_the_official_block_in_float64():
    """20-d decoder, 3 heads: head dim 6, inner width 18 (as 512 / 12)."""
    torch.manual_seed(0)
    layer = BootMAEDecoderLayer(20, 12, num_heads=3)
    assert layer.attn.q_bias.shape == (18, )
    with torch.no_grad():  # non-trivial biases and norms
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 5, 20)
    f = torch.randn(2, 4, 12)
    ours = _np(layer(x, f))
    np.testing.assert_allclose(ours, _ref_layer(layer, _np(x), _np(f)),
                               rtol=1e-4, atol=1e-5)


def _moco_sincos(grid, dim, temperature=10000.):
    """MoCo v3's 2-D sin-cos (as the official code builds it), float64,
    with a zero class-token row."""
    gw, gh = np.meshgrid(np.arange(grid, dtype=np.float64),
                         np.arange(grid, dtype=np.float64), indexing='ij')
    omega = 1. / temperature**(np.arange(dim // 4) / (dim // 4))
    ow = np.outer(gw.ravel(), omega)
    oh = np.outer(gh.ravel(), omega)
    pe = np.concatenate([np.sin(ow), np.cos(ow), np.sin(oh), np.cos(oh)], 1)
    return np.concatenate([np.zeros((1, dim)), pe])


def _neck(**kwargs):
    cfg = dict(type='BootMAENeck', num_patches=49, patch_size=4, in_chans=1,
               embed_dim=32, decoder_embed_dim=24, decoder_depth=2,
               decoder_num_heads=5)
    cfg.update(kwargs)
    torch.manual_seed(0)
    neck = MODELS.build(cfg)
    neck.init_weights()
    return neck


def test_position_embeddings_are_the_official_sincos():
    neck = _neck()
    np.testing.assert_allclose(_np(neck.pixel_decoder.pos_embed[0]),
                               _moco_sincos(7, 24), atol=1e-6)
    np.testing.assert_allclose(_np(neck.feature_decoder.pos_embed[0]),
                               _moco_sincos(7, 32), atol=1e-6)
    # the feature decoder's equals the encoder's (fixed, not trained)
    vit = MODELS.build(dict(type='BootMAEViT', arch=dict(
        embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64),
        img_size=28, patch_size=4, patch_cfg=dict(in_channels=1),
        bootmae_mask_generator=dict(type='BootMAEMaskGenerator',
                                    num_block=30, num_masked=37, min_block=4,
                                    max_block=15, max_roll=1)))
    vit.init_weights()
    torch.testing.assert_close(vit.pos_embed,
                               neck.feature_decoder.pos_embed)


def _inputs(seed=1, visible=12):
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(2, 1 + visible, 32, generator=g)
    low, high = (torch.randn(2, 1 + visible, 32, generator=g)
                 for _ in range(2))
    order = torch.stack([torch.randperm(49, generator=g) for _ in range(2)])
    mask = torch.ones(2, 49)
    mask.scatter_(1, order[:, :visible], 0)
    ids_restore = torch.argsort(order, dim=1)
    return latent, (low, high), ids_restore, mask


def test_output_shapes_and_pixel_head():
    neck = _neck()
    pixels, feats = neck(*_inputs())
    assert pixels.shape == (2, 1, 28, 28) and feats.shape == (2, 49, 32)
    assert neck.pixel_decoder.head.bias.shape == (1, )  # per channel


@pytest.mark.parametrize('decoder', ['pixel_decoder', 'feature_decoder'])
def test_position_embedding_of_visible_positions_is_unused(decoder):
    neck = _neck()
    latent, features, ids_restore, mask = _inputs()
    before = neck(latent, features, ids_restore, mask)
    module = getattr(neck, decoder)
    visible = (mask[0] == 0).nonzero().flatten() + 1  # +1: class row
    module.pos_embed[0, visible] += 5.  # a buffer
    after = neck(latent, features, ids_restore, mask)
    index = 0 if decoder == 'pixel_decoder' else 1
    # image 0's output ignores the rows of its visible positions
    assert torch.equal(before[index][0], after[index][0])
    masked = (mask[0] == 1).nonzero().flatten()[:3] + 1
    module.pos_embed[0, masked] += 5.
    assert not torch.equal(before[index][0],
                           neck(latent, features, ids_restore, mask)[index][0])


def test_each_decoder_injects_its_own_encoder_features():
    neck = _neck()
    latent, (low, high), ids_restore, mask = _inputs()
    pixels, feats = neck(latent, (low, high), ids_restore, mask)
    p2, f2 = neck(latent, (low + 1, high), ids_restore, mask)
    assert not torch.equal(pixels, p2) and torch.equal(feats, f2)
    p3, f3 = neck(latent, (low, high + 1), ids_restore, mask)
    assert torch.equal(pixels, p3) and not torch.equal(feats, f3)


def test_official_initialisation():
    neck = _neck()
    d = neck.pixel_decoder
    assert d.mask_token.abs().max() <= 0.02
    qkv = d.layers[0].attn.qkv.weight
    bound = math.sqrt(6. / (qkv.shape[0] // 3 + qkv.shape[1]))
    assert qkv.abs().max() <= bound and qkv.abs().max() > 0.9 * bound
    assert d.down.bias.abs().max() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match='target'):
        MODELS.build(dict(type='BootMAEDecoder', embed_dim=8,
                          decoder_embed_dim=8, depth=1, num_heads=2,
                          num_patches=4, target='tokens'))
    with pytest.raises(ValueError, match='square'):
        _neck(num_patches=48)
