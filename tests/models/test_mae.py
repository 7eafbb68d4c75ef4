"""SBAMViT: the MAEViT backbone with SBAM masking, end to end with the stock
MAEPretrainDecoder / MAEPretrainHead."""
import copy

import numpy as np
import pytest
import torch

from mmpretrain.registry import MODELS
from mmsbam import SBAMViT
from sbam_backbone_checks import assert_padding_ignores_masked_content

L = 64  # (32 / 4) ** 2
PATCH = 4
# AMR settings for which 64 * (1 - r_b) = 27.2 - 0.25 n (n salient tokens)
# is never an integer, so int() rounding cannot depend on float32 vs
# float64 arithmetic (_expected_amr_counts asserts the margin).
BASE, VAR, DELTA = 0.7, 0.125, 0.3
AMR = dict(ratio_var=VAR, delta=DELTA)


def _images(n, seed, channels=1):
    """Diverse images: noise of several scales plus ramps of several slopes
    (gives a wide range of salient fractions)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x = torch.randn(1, channels, 32, 32, generator=g) * (0.05 * 3**(i % 6))
        if (i // 6) % 2:
            x = x + torch.linspace(-3, 3, 32).view(1, 1, 1, 32) * (i % 6 + 1)
        out.append(x)
    return torch.cat(out)


@torch.no_grad()
def _tokens(backbone, x):
    """Patch tokens the method defines: patch embedding + absolute position
    embedding, class token excluded."""
    return backbone.patch_embed(x)[0] + backbone.pos_embed[:, 1:, :]


def _expected_masked(ratio):
    return L - int(np.floor(L * (1 - ratio)))


def _expected_amr_counts(backbone, x, np_token_salience, mode='sample'):
    """Masked tokens per image from SBAM.md section 3, in float64 numpy."""
    s = np_token_salience(_tokens(backbone, x).numpy())
    r = BASE - VAR + 2 * VAR * (s > DELTA).mean(axis=1)
    if mode == 'batch':
        r = np.full_like(r, r.mean())
    frac = L * (1 - r) - np.floor(L * (1 - r))
    assert (np.minimum(frac, 1 - frac) > 1e-3).all()  # rounding unambiguous
    return [_expected_masked(v) for v in r]


def _top_k_mask(salience, k):
    """1 on the k most salient tokens of each row; the k-th and (k+1)-th
    values must differ, else "the top k" is not defined."""
    ranked = -np.sort(-salience, axis=1)
    assert (ranked[:, k - 1] - ranked[:, k] > 1e-5).all(), 'tie at top k'
    mask = np.zeros(salience.shape)
    np.put_along_axis(mask, np.argsort(-salience, axis=1)[:, :k], 1.0, axis=1)
    return mask


# --------------------------------------------------------------------------
# shapes and training step
# --------------------------------------------------------------------------


@pytest.mark.parametrize('in_channels', [1, 3])
def test_forward_shapes_and_loss(build_mae, in_channels):
    model = build_mae(in_channels=in_channels)
    assert isinstance(model.backbone, SBAMViT)
    x = _images(3, 0, in_channels)
    torch.manual_seed(0)
    latent, mask, ids_restore = model.backbone(x)
    assert latent.shape == (3, 1 + 16, 32)  # int(64 * 0.25) = 16 visible
    assert mask.shape == (3, L) and ids_restore.shape == (3, L)
    assert mask.sum(1).tolist() == [48.0] * 3
    pred = model.neck(latent, ids_restore)
    assert pred.shape == (3, L, 4 * 4 * in_channels)
    loss = model.head.loss(pred, x, mask)
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_training_step_with_per_sample_amr_has_finite_grads(build_mae):
    model = build_mae(mask_ratio=BASE, amr=AMR)
    model.train()
    x = _images(6, 1)
    torch.manual_seed(1)
    losses = model.loss(x, [None] * 6)
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# --------------------------------------------------------------------------
# which tokens are masked
# --------------------------------------------------------------------------


def test_embedding_salience_zero_noise_masks_top_k(build_backbone,
                                                   np_token_salience):
    bb = build_backbone(noise_scale=0.0)
    x = _images(4, 2)
    _, mask, _ = bb(x)
    s = np_token_salience(_tokens(bb, x).numpy())
    np.testing.assert_array_equal(mask.numpy(), _top_k_mask(s, 48))


@pytest.mark.parametrize('layer', [0, 1])
def test_attention_salience_source(build_backbone, ref_attention_salience,
                                   layer):
    bb = build_backbone(
        noise_scale=0.0, salience_source='attention', salience_layer=layer)
    x = _images(4, 3)
    latent, mask, ids_restore = bb(x)
    assert latent.shape == (4, 17, 32)
    s = ref_attention_salience(_tokens(bb, x), bb.layers, layer).numpy()
    np.testing.assert_array_equal(mask.numpy(), _top_k_mask(s, 48))
    # with the default noise it runs and masks the right number
    noisy = build_backbone(salience_source='attention', salience_layer=layer)
    torch.manual_seed(3)
    _, mask, _ = noisy(x)
    assert mask.sum(1).tolist() == [48.0] * 4


def test_default_noise_masks_salient_tokens_more(build_backbone,
                                                 np_token_salience):
    bb = build_backbone()
    x = _images(12, 4)
    s = np_token_salience(_tokens(bb, x).numpy())
    torch.manual_seed(4)
    _, mask, _ = bb(x)
    m = mask.numpy().astype(bool)
    assert s[m].mean() - s[~m].mean() > 0.1


def test_random_mask_generator_reproduces_stock_maevit(build_backbone):
    sbam = build_backbone(mask_generator=dict(type='RandomMaskGenerator'))
    stock = build_backbone('MAEViT', seed=123)
    stock.load_state_dict(sbam.state_dict(), strict=True)
    x = _images(3, 5)
    torch.manual_seed(7)
    ours = sbam(x)
    torch.manual_seed(7)
    ref = stock(x)
    assert torch.equal(ours[1], ref[1])
    assert torch.equal(ours[2], ref[2])
    assert torch.allclose(ours[0], ref[0], atol=1e-6)


@pytest.mark.parametrize('flag', [None, False])
def test_unmasked_forward_equals_stock(build_backbone, flag):
    sbam = build_backbone()
    stock = build_backbone('MAEViT', seed=5)
    stock.load_state_dict(sbam.state_dict(), strict=True)
    x = _images(2, 6)
    ours = sbam(x, mask=flag)
    ref = stock(x, mask=None)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a.shape == (2, 1 + L, 32)
        assert torch.allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------------
# adaptive masking ratio
# --------------------------------------------------------------------------


def test_amr_sample_counts_vary_and_follow_formula(build_backbone,
                                                   np_token_salience):
    bb = build_backbone(mask_ratio=BASE, amr=AMR)
    x = _images(12, 7)
    expected = _expected_amr_counts(bb, x, np_token_salience)
    assert len(set(expected)) > 2  # the inputs really differ
    torch.manual_seed(8)
    latent, mask, ids_restore = bb(x)
    assert mask.sum(1).tolist() == [float(e) for e in expected]
    assert latent.shape == (12, 1 + L - min(expected), 32)
    assert torch.isfinite(latent).all()
    assert ((mask == 0) | (mask == 1)).all()


def test_amr_batch_mode_equal_counts(build_backbone, np_token_salience):
    bb = build_backbone(mask_ratio=BASE, amr=dict(AMR, mode='batch'))
    x = _images(12, 7)
    assert len(set(_expected_amr_counts(bb, x, np_token_salience))) > 2
    expected = _expected_amr_counts(bb, x, np_token_salience, mode='batch')
    torch.manual_seed(9)
    latent, mask, ids_restore = bb(x)
    assert mask.sum(1).tolist() == [float(expected[0])] * 12
    assert latent.shape == (12, 1 + L - expected[0], 32)
    # equal counts: plain MAE inverse permutation
    assert torch.equal(ids_restore.sort(1).values,
                       torch.arange(L).expand(12, L))


@pytest.mark.parametrize('groups', [1, 2, 64])
@pytest.mark.parametrize('source', ['embedding', 'attention'])
def test_batch_invariance_with_per_sample_ratios(build_mae, np_token_salience,
                                                 source, groups):
    """An image's mask, real latent slots and decoder output do not depend
    on the images it is batched with (padding is invisible), however the
    encoder splits the batch (``encoder_groups``)."""
    model = build_mae(mask_ratio=BASE, amr=AMR, salience_source=source,
                      encoder_groups=groups)
    bb = model.backbone
    pool = _images(13, 10)
    counts = np.array(_expected_amr_counts(bb, pool, np_token_salience))
    order = np.argsort(counts, kind='stable')
    # target: a middle image; A: least-masked others (K_max large);
    # B: most-masked others (K_max small)
    target = order[6]
    set_a = [target] + order[:3].tolist()
    set_b = [target] + order[-3:].tolist()
    set_c = [target] * 4  # equal counts: the unpadded code path

    def run(idx):
        torch.manual_seed(11)  # the noise is one (B, L) draw: same row 0
        with torch.no_grad():
            latent, mask, ids = bb(pool[idx])
            pred = model.neck(latent, ids)
        return latent, mask, ids, pred

    res = {k: run(v) for k, v in dict(a=set_a, b=set_b, c=set_c).items()}
    k_max = {k: r[0].shape[1] - 1 for k, r in res.items()}
    assert k_max['a'] != k_max['b']  # the padding really differs
    if source == 'embedding':  # the salience-based counts are known
        assert k_max['a'] == L - counts[order[:3]].min()
        assert k_max['b'] == L - counts[target]
    n_vis = int(L - res['c'][1][0].sum())
    for k in ('a', 'b'):
        latent, mask, ids, pred = res[k]
        assert torch.equal(mask[0], res['c'][1][0])
        vis = ~mask[0].bool()
        assert torch.equal(ids[0][vis], res['c'][2][0][vis])
        assert torch.allclose(latent[0, :1 + n_vis], res['c'][0][0],
                              atol=1e-5)
        assert torch.allclose(pred[0], res['c'][3][0], atol=1e-5)
        assert torch.isfinite(latent).all() and torch.isfinite(pred).all()


# --------------------------------------------------------------------------
# numerical safety
# --------------------------------------------------------------------------


@pytest.mark.parametrize('groups', [1, 4])
@torch.no_grad()
def test_padded_slots_carry_nothing_of_the_masked_tokens(
        build_backbone, monkeypatch, groups):
    bb = build_backbone(mask_ratio=BASE, amr=AMR, encoder_groups=groups)
    assert_padding_ignores_masked_content(bb, _images(12, 8), PATCH,
                                          monkeypatch)


@pytest.mark.parametrize('amr', [None, AMR])
def test_constant_image_identical_tokens(build_mae, amr):
    model = build_mae(mask_ratio=BASE, amr=amr)
    bb = model.backbone
    with torch.no_grad():
        bb.pos_embed.zero_()  # constant image -> identical tokens -> ŝ = 0
    x = torch.full((3, 1, 32, 32), 0.7)
    assert torch.equal(bb.masker.salience(_tokens(bb, x)), torch.zeros(3, L))
    torch.manual_seed(12)
    latent, mask, ids = bb(x)
    # ŝ = 0 everywhere: AMR gives base - var, masking is random
    r = BASE - VAR if amr else BASE
    assert mask.sum(1).tolist() == [float(_expected_masked(r))] * 3
    pred = model.neck(latent, ids)
    loss = model.head.loss(pred, x, mask)
    assert torch.isfinite(latent).all() and torch.isfinite(pred).all()
    assert torch.isfinite(loss)


def test_bf16_autocast_forward(build_mae, np_token_salience):
    model = build_mae(mask_ratio=BASE, amr=AMR, noise_scale=0.0)
    bb = model.backbone
    g = torch.Generator().manual_seed(13)
    # moderate scales: no saturated softmax, hence no ties in the salience
    x = torch.randn(6, 1, 32, 32, generator=g) * torch.tensor(
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]).view(6, 1, 1, 1)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        tokens = _tokens(bb, x)  # what the backbone sees under autocast
        latent, mask, ids = bb(x)
        pred = model.neck(latent, ids)
        loss = model.head.loss(pred, x, mask)
    assert torch.isfinite(latent.float()).all()
    assert torch.isfinite(pred.float()).all() and torch.isfinite(loss)
    # salience is computed in float32 from those tokens: exact top-k
    s = np_token_salience(tokens.float().numpy())
    r = BASE - VAR + 2 * VAR * (s > DELTA).mean(axis=1)
    expected = [_expected_masked(v) for v in r]
    assert len(set(expected)) > 1
    assert mask.sum(1).tolist() == [float(e) for e in expected]
    for b in range(6):
        np.testing.assert_array_equal(
            mask[b].numpy(), _top_k_mask(s[b:b + 1], expected[b])[0])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_attention_source_masks_a_half_precision_model(
        build_backbone, ref_attention_salience, dtype):
    """The whole backbone cast with ``.to(dtype)`` (no autocast) masks by
    the float32 attention salience of its (rounded) weights."""
    bb = build_backbone(noise_scale=0.0, salience_source='attention',
                        salience_layer=1)
    reference = copy.deepcopy(bb.to(dtype)).float()
    x = _images(4, 3).to(dtype)
    latent, mask, _ = bb(x)
    assert latent.dtype == dtype and torch.isfinite(latent.float()).all()
    salience = bb.masker.last_masking.salience
    assert salience.dtype == torch.float32
    tokens = _tokens(bb, x).float()  # what the masker scores
    ref = ref_attention_salience(tokens, reference.layers, 1)
    assert torch.allclose(salience.double(), ref, atol=1e-5)
    np.testing.assert_array_equal(mask.numpy(), _top_k_mask(ref.numpy(), 48))


# --------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------


@pytest.mark.parametrize('stock_type', ['VisionTransformer', 'MAEViT'])
def test_state_dict_matches_stock(build_backbone, stock_type):
    sbam = build_backbone(amr=AMR, mask_ratio=BASE)
    stock = build_backbone(stock_type, seed=99)
    ours, ref = sbam.state_dict(), stock.state_dict()
    assert list(ours) == list(ref)
    assert all(ours[k].shape == ref[k].shape for k in ours)
    n_params = sum(p.numel() for p in sbam.parameters())
    assert n_params == sum(p.numel() for p in stock.parameters())
    stock.load_state_dict(ours, strict=True)
    assert all(torch.equal(stock.state_dict()[k], ours[k]) for k in ours)
    # and back: a stock checkpoint loads into SBAMViT
    other = build_backbone(stock_type, seed=7)
    sbam.load_state_dict(other.state_dict(), strict=True)
    assert torch.equal(sbam.layers[0].attn.qkv.weight,
                       other.layers[0].attn.qkv.weight)


# --------------------------------------------------------------------------
# argument validation at build time
# --------------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, name', [
    (dict(mask_ratio=0), 'mask_ratio'),
    (dict(mask_ratio=1), 'mask_ratio'),
    (dict(mask_ratio=-0.1), 'mask_ratio'),
    (dict(mask_ratio=1.5), 'mask_ratio'),
    (dict(mask_ratio=1.5, amr=AMR), 'mask_ratio'),
    (dict(mask_ratio=0.9, amr=dict(ratio_var=0.2)), 'ratio_var'),
    (dict(mask_ratio=0.15, amr=dict(ratio_var=0.2)), 'ratio_var'),
    (dict(amr=dict(ratio_var=-0.1)), 'ratio_var'),
    (dict(amr=dict(delta=-0.1)), 'delta'),
    (dict(amr=dict(delta=1.5)), 'delta'),
    (dict(noise_scale=-0.5), 'noise_scale'),
    (dict(salience_source='teacher'), 'salience_source'),
    (dict(salience_source='pixels'), 'salience_source'),
    (dict(amr=dict(mode='image')), 'mode'),
    (dict(amr=dict(ratio_var=0.1, thresh=0.5)), 'thresh'),
    (dict(temperature=0), 'temperature'),
    (dict(temperature=-1.0), 'temperature'),
    (dict(salience_source='attention', salience_layer=2), 'salience_layer'),
    (dict(salience_source='attention', salience_layer=-1), 'salience_layer'),
])
def test_bad_arguments_raise_value_error(backbone_cfg, kwargs, name):
    with pytest.raises(ValueError, match=name):
        MODELS.build(backbone_cfg(**kwargs))


def test_good_arguments_build(backbone_cfg):
    for kwargs in (dict(), dict(noise_scale=0), dict(temperature=0.1),
                   dict(salience_source='attention', salience_layer=1),
                   dict(mask_ratio=0.9, amr=dict(ratio_var=0.09)),
                   dict(amr=dict(ratio_var=0.1, delta=0.0, mode='batch')),
                   dict(amr=dict(delta=1.0))):
        assert isinstance(MODELS.build(backbone_cfg(**kwargs)), SBAMViT)
