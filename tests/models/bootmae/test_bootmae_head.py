"""``BootMAEHead`` against float64 references written from the official
``train_one_epoch`` lines: the per-patch, per-channel pixel target, the
neighbourhood weights, Rloss and Ploss with the masked-count divisor and a
non-affine LayerNorm on both sides. Each planted change of a normaliser,
weight or divisor moves the result far beyond the tolerance."""
import numpy as np
import pytest
import torch

from mmpretrain.registry import MODELS

P = 4  # patch size
H = W = 7  # patch grid


def _head(**kwargs):
    return MODELS.build(dict(dict(type='BootMAEHead', patch_size=P),
                             **kwargs))


def _ref_target(images, eps=1e-5):
    """Official: per patch and channel, mean over the p x p pixels,
    std = sqrt(biased var + eps)."""
    x = images.astype(np.float64)
    B, C = x.shape[:2]
    out = np.empty_like(x)
    for b in range(B):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    patch = x[b, c, i * P:(i + 1) * P, j * P:(j + 1) * P]
                    mu = patch.mean()
                    var = ((patch - mu)**2).mean()
                    out[b, c, i * P:(i + 1) * P, j * P:(j + 1) * P] = \
                        (patch - mu) / np.sqrt(var + eps)
    return out


def _ref_weights(mask):
    """Official: w = m * AvgPool3x3(m, stride 1, pad 1, zeros counted) + m,
    written as an explicit neighbourhood sum / 9."""
    m = mask.reshape(-1, H, W).astype(np.float64)
    w = np.zeros_like(m)
    for b in range(m.shape[0]):
        for i in range(H):
            for j in range(W):
                s = sum(m[b, i + di, j + dj]
                        for di in (-1, 0, 1) for dj in (-1, 0, 1)
                        if 0 <= i + di < H and 0 <= j + dj < W)
                w[b, i, j] = m[b, i, j] * s / 9 + m[b, i, j]
    return w.reshape(mask.shape[0], -1)


def _ref_layer_norm(x, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu)**2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps)


def _ref_losses(pixel, feat, images, target, mask, lam, pixel_eps=1e-5,
                feature_eps=1e-6, weighted=True, divisor='masked'):
    """Rloss = mean over pixels of w (out - target)^2 / mean(m); Ploss =
    mean over features of w (LN t - LN out)^2 / mean(m)."""
    B, C = images.shape[:2]
    w = _ref_weights(mask) if weighted else mask.astype(np.float64)
    w_pix = np.repeat(np.repeat(w.reshape(B, 1, H, W), P, 2), P, 3)
    m = mask.astype(np.float64)
    norm = m.mean() if divisor == 'masked' else w.mean()
    err = (pixel.astype(np.float64) - _ref_target(images, pixel_eps))**2
    rloss = (w_pix * err).sum() / (B * C * H * P * W * P) / norm
    ferr = (_ref_layer_norm(target.astype(np.float64), feature_eps)
            - _ref_layer_norm(feat.astype(np.float64), feature_eps))**2
    ploss = (w[..., None] * ferr).mean() / norm
    return rloss, lam * ploss


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    B, C, D = 3, 2, 8
    # small per-patch spread, so that the variance epsilon matters
    images = 0.5 + 0.01 * torch.randn(B, C, H * P, W * P, generator=g)
    pixel = torch.randn(B, C, H * P, W * P, generator=g)
    # small feature spreads too, for the LayerNorm epsilon
    feat = 0.01 * torch.randn(B, H * W, D, generator=g)
    target = 0.03 * torch.randn(B, H * W, D, generator=g) + 1
    mask = (torch.rand(B, H * W, generator=g) < 0.75).float()
    return pixel, feat, images, target, mask


def _ours(head, batch, lam=0.4):
    pixel, feat, images, target, mask = batch
    out = head.loss(pixel, feat, images, target, mask, lam)
    return out['loss_pixel'].item(), out['loss_feature'].item()


def _theirs(batch, lam=0.4, **kwargs):
    pixel, feat, images, target, mask = (t.numpy() for t in batch)
    return _ref_losses(pixel, feat, images, target, mask, lam, **kwargs)


def test_pixel_target_per_patch_and_channel():
    g = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, H * P, W * P, generator=g)
    ours = _head().pixel_target(images).double().numpy()
    np.testing.assert_allclose(ours, _ref_target(images.numpy()),
                               rtol=1e-5, atol=1e-5)


def test_corner_cell_with_three_masked_neighbours_weighs_1_plus_4_9():
    mask = torch.zeros(1, H * W)
    for i, j in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        mask[0, i * W + j] = 1
    w = _head().loss_weights(mask, H, W)
    assert w[0, 0].item() == pytest.approx(1 + 4 / 9, abs=1e-7)
    assert w[0, 2].item() == 0  # visible cells weigh 0
    np.testing.assert_allclose(w.numpy(), _ref_weights(mask.numpy()),
                               atol=1e-7)
    unweighted = _head(weight_mask=False).loss_weights(mask, H, W)
    assert torch.equal(unweighted, mask)


def test_both_losses_match_the_float64_reference(batch):
    ours = _ours(_head(), batch)
    np.testing.assert_allclose(ours, _theirs(batch), rtol=2e-5)


@pytest.mark.parametrize('planted', [
    dict(pixel_eps=1e-6), dict(feature_eps=1e-3), dict(weighted=False),
    dict(divisor='weights'), dict(lam=0.5)])
def test_each_planted_change_is_detected(batch, planted):
    """The reference with one normaliser, weight or divisor changed is far
    from the head's value: the comparison above can fail."""
    lam = planted.pop('lam', 0.4)
    changed = np.array(_theirs(batch, lam=lam, **planted))
    ours = np.array(_ours(_head(), batch))
    assert np.abs(changed / ours - 1).max() > 1e-3


def test_divisor_is_the_masked_count_not_the_weight_sum(batch):
    """Rloss / (the same loss divided by sum(w)) = sum(w) / sum(m) ~ 1.8 for
    BootMAE masks; here it is whatever the random mask gives, > 1."""
    pixel, feat, images, target, mask = batch
    r_ours = _ours(_head(), batch)[0]
    r_wsum = _theirs(batch, divisor='weights')[0]
    w = _ref_weights(mask.numpy())
    assert r_ours / r_wsum == pytest.approx(w.sum() / mask.sum().item(),
                                            rel=1e-5)


def test_planted_changes_in_the_head_fail_the_reference(batch):
    """A head built with other normalisers no longer matches."""
    ref = np.array(_theirs(batch))
    for kwargs in (dict(pixel_eps=1e-6), dict(feature_eps=1e-3),
                   dict(weight_mask=False)):
        ours = np.array(_ours(_head(**kwargs), batch))
        assert np.abs(ours / ref - 1).max() > 1e-3, kwargs


@pytest.mark.parametrize('kwargs, word', [
    (dict(pixel_eps=0), 'pixel_eps'), (dict(feature_eps=-1), 'feature_eps'),
    (dict(patch_size=0), 'patch_size')])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        _head(**kwargs)
