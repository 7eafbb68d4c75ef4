"""Token salience (SBAM.md section 1): formulas, temperature, attention
source and numerical safety."""
import copy
import math

import numpy as np
import pytest
import torch

import mmsbam
from mmsbam import attention_salience, token_salience

# Three tokens in 2-D, worked by hand below.
X3 = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
# A = X X^T = [[1, 0, 1], [0, 4, 2], [1, 2, 2]];  column sums of A: 2, 6, 5.


def _hand_salience_x3(tau):
    """Closed form of SBAM's salience for X3: softmax rows written out."""
    e = lambda v: math.exp(v / tau)  # noqa: E731
    # row i of P = softmax(A_i / tau)
    r0 = [e(1), e(0), e(1)]
    r1 = [e(0), e(4), e(2)]
    r2 = [e(1), e(2), e(2)]
    rows = [[v / sum(r) for v in r] for r in (r0, r1, r2)]
    s = [rows[0][j] + rows[1][j] + rows[2][j] for j in range(3)]
    lo, hi = min(s), max(s)
    return [(v - lo) / (hi - lo) for v in s]


def test_hand_computed_three_tokens_tau1():
    # Numbers worked out on paper (e = 2.718281828):
    # s0 = e/(2e+1) + 1/(1+e^2+e^4) + 1/(1+2e) = 0.5935574
    # s1 = 1/(2e+1) + e^4/(1+e^2+e^4) + e/(1+2e) = 1.4444945
    # s2 = e/(2e+1) + e^2/(1+e^2+e^4) + e/(1+2e) = 0.9619480
    s0, s1, s2 = 0.5935574, 1.4444945, 0.9619480
    expected = [0.0, 1.0, (s2 - s0) / (s1 - s0)]  # [0, 1, 0.432923]
    out = token_salience(torch.tensor([X3]))
    assert out.shape == (1, 3)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(out[0].numpy(), _hand_salience_x3(1.0),
                               atol=1e-6)


@pytest.mark.parametrize('tau', [0.5, 2.0, 3.7])
def test_hand_computed_three_tokens_temperature(tau):
    out = token_salience(torch.tensor([X3]), temperature=tau)
    np.testing.assert_allclose(out[0].numpy(), _hand_salience_x3(tau),
                               atol=1e-6)


def test_temperature_limits():
    """tau -> 0: each row of P is a (tied) argmax; tau -> inf: ŝ follows
    the column sums of A (first-order expansion of the softmax)."""
    x = torch.tensor([X3])
    # tau -> 0: row0 splits 0.5/0.5 over tokens 0,2; row1 -> token 1;
    # row2 splits over tokens 1,2. s = [0.5, 1.5, 1.0] -> ŝ = [0, 1, 0.5].
    cold = token_salience(x, temperature=0.01)
    np.testing.assert_allclose(cold[0].numpy(), [0.0, 1.0, 0.5], atol=1e-6)
    # tau -> inf: s_j ~ 1 + (colsum_j - const) / (L tau): ŝ = (c - 2) / 4
    # for column sums c = [2, 6, 5] -> [0, 1, 0.75].
    hot = token_salience(x, temperature=1e4)
    np.testing.assert_allclose(hot[0].numpy(), [0.0, 1.0, 0.75], atol=1e-3)
    # and the default tau = 1 sits in between, distinct from both
    mid = token_salience(x)
    assert 0.5 > mid[0, 2].item() > 0.4


def test_matches_numpy_reference_random_batch(np_token_salience):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 7, 5, generator=g)
    tokens[1] *= 0.1  # images with very different scales
    tokens[2] *= 2.0
    for tau in (1.0, 0.3, 5.0):
        out = token_salience(tokens, temperature=tau)
        np.testing.assert_allclose(
            out.numpy(), np_token_salience(tokens.numpy(), tau), atol=1e-5)


def test_normalised_per_image_and_no_gradient():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randn(4, 9, 6, generator=g) * torch.tensor(
        [0.2, 1.0, 3.0, 0.05]).view(4, 1, 1)
    tokens.requires_grad_(True)
    out = token_salience(tokens)
    assert out.shape == (4, 9)
    assert out.dtype == torch.float32
    assert not out.requires_grad
    assert out.grad_fn is None
    # every image, whatever its scale, spans exactly [0, 1]
    assert torch.equal(out.amin(dim=1), torch.zeros(4))
    assert torch.allclose(out.amax(dim=1), torch.ones(4))
    assert tokens.grad is None


def test_per_image_independence():
    """An image's salience does not depend on the rest of the batch."""
    g = torch.Generator().manual_seed(2)
    a = torch.randn(3, 8, 4, generator=g)
    b = torch.randn(3, 8, 4, generator=g) * 10
    b[0] = a[0]
    assert torch.allclose(token_salience(a)[0], token_salience(b)[0])


def test_bad_temperature_raises():
    x = torch.randn(1, 4, 3)
    for tau in (0, -1.0):
        with pytest.raises(ValueError, match='temperature'):
            token_salience(x, temperature=tau)
    with pytest.raises(ValueError, match='tokens'):
        token_salience(torch.randn(4, 3))


# --------------------------------------------------------------------------
# attention source
# --------------------------------------------------------------------------


def _randomise_block(block, seed):
    """Give ln1 and qkv non-trivial weights so using (or skipping) them
    changes the result."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        block.ln1.weight.copy_(1 + 0.5 * torch.randn(
            block.ln1.weight.shape, generator=g))
        block.ln1.bias.copy_(0.3 * torch.randn(
            block.ln1.bias.shape, generator=g))
        block.attn.qkv.weight.copy_(0.5 * torch.randn(
            block.attn.qkv.weight.shape, generator=g))
        block.attn.qkv.bias.copy_(0.2 * torch.randn(
            block.attn.qkv.bias.shape, generator=g))


def test_reference_layout_matches_stock_attention(build_backbone):
    """Sanity of the test's own reference: q/k/v split and scaling used by
    ``ref_attention_salience`` reproduce the stock attention output."""
    vit = build_backbone()
    block = vit.layers[0]
    _randomise_block(block, 3)
    D, H = 32, 4
    hd = D // H
    x = torch.randn(2, 10, D, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h = block.ln1(x)
        qkv = h @ block.attn.qkv.weight.t() + block.attn.qkv.bias
        q, k, v = (qkv[..., i * D:(i + 1) * D].reshape(2, 10, H, hd)
                   .permute(0, 2, 1, 3) for i in range(3))
        p = (q @ k.transpose(-2, -1) / math.sqrt(hd)).softmax(-1)
        out = (p @ v).transpose(1, 2).reshape(2, 10, D)
        out = block.attn.proj(out)
        assert torch.allclose(out, block.attn(h), atol=1e-5)


@pytest.mark.parametrize('layer_index', [0, 1])
def test_attention_salience_equals_direct_computation(
        build_backbone, ref_attention_salience, layer_index):
    vit = build_backbone()
    for i, block in enumerate(vit.layers):
        _randomise_block(block, 10 + i)
    tokens = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(5))
    out = attention_salience(tokens, vit.layers, layer_index)
    ref = ref_attention_salience(tokens, vit.layers, layer_index)
    _assert_spread(ref)
    assert out.shape == (3, 16) and out.dtype == torch.float32
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # the two layers really give different answers (the index matters)
    other = ref_attention_salience(tokens, vit.layers, 1 - layer_index)
    assert not torch.allclose(out.double(), other, atol=1e-3)
    # temperature is applied on top of the 1/sqrt(d) scaling
    hot = attention_salience(tokens, vit.layers, layer_index, temperature=3.)
    ref_hot = ref_attention_salience(tokens, vit.layers, layer_index, 3.)
    assert torch.allclose(hot.double(), ref_hot, atol=1e-5)


def test_attention_salience_bad_layer(build_backbone):
    vit = build_backbone()
    tokens = torch.randn(1, 4, 32)
    for idx in (-1, 2):
        with pytest.raises(ValueError, match='salience_layer'):
            attention_salience(tokens, vit.layers, idx)


# --------------------------------------------------------------------------
# numerical safety
# --------------------------------------------------------------------------


def test_identical_tokens_give_zero_salience():
    v = torch.randn(5)
    for tokens in (v.expand(2, 11, 5).clone(), torch.zeros(2, 11, 5),
                   torch.full((1, 6, 3), 7.0)):
        out = token_salience(tokens)
        assert torch.isfinite(out).all()
        assert torch.equal(out, torch.zeros_like(out))


def test_identical_tokens_attention_salience_zero(build_backbone):
    vit = build_backbone()
    tokens = torch.randn(32).expand(2, 9, 32).clone()
    out = attention_salience(tokens, vit.layers, 0)
    assert torch.isfinite(out).all()
    assert torch.equal(out, torch.zeros_like(out))


def _assert_spread(ref):
    """Guard against degenerate test inputs (saturated softmax -> ŝ = 0)."""
    assert (np.asarray(ref).std(axis=-1) > 0.1).all()


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype, np_token_salience):
    g = torch.Generator().manual_seed(6)
    tokens = (torch.randn(2, 12, 16, generator=g) * 0.5).to(dtype)
    out = token_salience(tokens)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # computed in float32 from the (exactly representable) low-precision
    # values, so it equals the float64 reference of those values
    ref = np_token_salience(tokens.float().numpy())
    _assert_spread(ref)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_overflowing_xxt(dtype, np_token_salience):
    g = torch.Generator().manual_seed(6)
    # |x| ~ 100 in 64-D: x.x ~ 6e5 overflows float16 (max 65504); a large
    # temperature brings the logits back to O(1) so the answer is not trivial
    tokens = (torch.randn(2, 12, 64, generator=g) * 100).to(dtype)
    if dtype == torch.float16:  # the stress is real
        assert not torch.isfinite(tokens @ tokens.transpose(1, 2)).all()
    out = token_salience(tokens, temperature=1e5)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    ref = np_token_salience(tokens.float().numpy(), 1e5)
    _assert_spread(ref)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_huge_float32_inputs_finite(np_token_salience):
    g = torch.Generator().manual_seed(7)
    # positive tokens of varied norms: rows attend to large tokens, so even
    # the saturated softmax gives a non-trivial ŝ
    tokens = torch.rand(2, 10, 16, generator=g) * 1e20
    out = token_salience(tokens)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert ((out >= 0) & (out <= 1)).all()
    # float64 numpy handles 1e40 logits exactly: the answer must match it
    ref = np_token_salience(tokens.numpy())
    assert (ref.max(axis=1) == 1).all()
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-6)
    # X X^T overflows float32 but X X^T / tau is O(1): must be exact
    tokens = torch.randn(2, 10, 16, generator=g) * 1e20
    out = token_salience(tokens, temperature=1e40)
    ref = np_token_salience(tokens.numpy(), 1e40)
    _assert_spread(ref)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)
    # near float32's maximum as well
    big = torch.randn(1, 6, 8, generator=g) * 1e37
    out = token_salience(big)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), np_token_salience(big.numpy()),
                               atol=1e-6)


def test_under_bf16_autocast(np_token_salience):
    g = torch.Generator().manual_seed(8)
    tokens = torch.randn(2, 16, 32, generator=g) * 0.5
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = token_salience(tokens)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # autocast must not reach the X X^T product (bf16 would be ~1e-2 off)
    ref = np_token_salience(tokens.numpy())
    _assert_spread(ref)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_attention_salience_under_bf16_autocast(build_backbone,
                                                ref_attention_salience):
    vit = build_backbone()
    _randomise_block(vit.layers[0], 9)
    tokens = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(9))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = attention_salience(tokens, vit.layers, 0)
    assert out.dtype == torch.float32
    ref = ref_attention_salience(tokens, vit.layers, 0)
    _assert_spread(ref)
    assert torch.allclose(out.double(), ref, atol=1e-5)


def test_public_api_exports():
    for name in ('token_salience', 'attention_salience',
                 'adaptive_mask_ratio', 'salience_guided_masking',
                 'random_masking', 'SalienceMaskGenerator',
                 'RandomMaskGenerator', 'AdaptiveMaskRatio', 'SBAMViT'):
        assert hasattr(mmsbam, name), name


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@pytest.mark.parametrize('layer_index', [0, 1])
def test_attention_salience_of_a_half_precision_model_is_float32(
        build_backbone, ref_attention_salience, dtype, layer_index):
    """``model.to(bfloat16)`` (no autocast): the blocks before
    ``layer_index`` and the chosen block's attention still run in float32,
    on the half-precision weights upcast."""
    vit = build_backbone()
    for i, block in enumerate(vit.layers):
        _randomise_block(block, 20 + i)
    vit.to(dtype)
    tokens = torch.randn(3, 16, 32,
                         generator=torch.Generator().manual_seed(21))
    out = attention_salience(tokens.to(dtype), vit.layers, layer_index)
    assert out.dtype == torch.float32
    assert all(p.dtype == dtype for p in vit.parameters())  # not upcast
    # reference: the same (rounded) weights and tokens, in float32/64
    ref = ref_attention_salience(tokens.to(dtype).float(),
                                 copy.deepcopy(vit.layers).float(),
                                 layer_index)
    _assert_spread(ref)
    # float32 throughout: 1e-5; a half-precision block would be ~1e-2 off
    assert torch.allclose(out.double(), ref, atol=1e-5)
