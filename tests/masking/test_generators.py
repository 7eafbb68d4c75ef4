"""Salience-based masking and random masking (SBAM.md section 2)."""
import numpy as np
import pytest
import torch

from mmpretrain.registry import MODELS
from mmsbam import (RandomMaskGenerator, SalienceMaskGenerator, random_masking,
                    salience_guided_masking)

RATIOS = [0.45, 0.6, 0.75, 0.9]


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _expected_masked(L, ratio):
    """MAE's rounding: keep int(L * (1 - r)), mask the rest."""
    return L - int(L * (1 - ratio))


def _check_mask_tensor(mask, B, L):
    assert mask.shape == (B, L)
    assert mask.is_floating_point()
    assert ((mask == 0) | (mask == 1)).all()


# --------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------


@pytest.mark.parametrize('ratio', RATIOS)
@pytest.mark.parametrize('masking', ['sbm', 'random'])
def test_exact_counts_float_ratio(ratio, masking):
    B, L = 5, 49
    sal = torch.rand(B, L, generator=_gen(0))
    if masking == 'sbm':
        res = salience_guided_masking(sal, ratio, generator=_gen(1))
    else:
        res = random_masking(sal, ratio, generator=_gen(1))
    _check_mask_tensor(res.mask, B, L)
    # 49 * (1 - r): 26.95, 19.6, 12.25, 4.9 -> masked 23, 30, 37, 45
    expected = {0.45: 23, 0.6: 30, 0.75: 37, 0.9: 45}[ratio]
    assert expected == _expected_masked(L, ratio)
    assert res.mask.sum(dim=1).tolist() == [float(expected)] * B
    assert res.ids_restore.shape == (B, L)
    assert res.ids_restore.dtype == torch.long


@pytest.mark.parametrize('masking', ['sbm', 'random'])
def test_exact_counts_per_sample_ratio(masking):
    B, L = 4, 49
    ratios = torch.tensor(RATIOS)
    sal = torch.rand(B, L, generator=_gen(2))
    fn = salience_guided_masking if masking == 'sbm' else random_masking
    res = fn(sal, ratios, generator=_gen(3))
    _check_mask_tensor(res.mask, B, L)
    # int(L * (1 - r)) of the float32 value each ratio is stored as
    expected = [_expected_masked(L, float(r)) for r in ratios]
    assert expected == [23, 30, 37, 45]
    assert res.mask.sum(dim=1).tolist() == [float(e) for e in expected]
    assert res.num_visible.tolist() == [L - e for e in expected]
    assert res.ids_keep.shape == (B, L - min(expected))


def test_exact_counts_l64_matches_mae():
    sal = torch.rand(3, 64, generator=_gen(4))
    res = salience_guided_masking(sal, 0.75, generator=_gen(5))
    assert res.mask.sum(1).tolist() == [48.0] * 3


@pytest.mark.parametrize('bad', [0, 1, -0.1, 1.5])
def test_bad_mask_ratio_raises(bad):
    sal = torch.rand(2, 16)
    with pytest.raises(ValueError, match='mask_ratio'):
        salience_guided_masking(sal, bad)
    with pytest.raises(ValueError, match='mask_ratio'):
        random_masking(sal, bad)
    with pytest.raises(ValueError, match='mask_ratio'):
        salience_guided_masking(sal, torch.tensor([0.5, bad]))


def test_bad_noise_scale_raises():
    with pytest.raises(ValueError, match='noise_scale'):
        salience_guided_masking(torch.rand(2, 16), 0.5, noise_scale=-0.1)
    with pytest.raises(ValueError, match='noise_scale'):
        MODELS.build(dict(type='SalienceMaskGenerator', noise_scale=-1))


# --------------------------------------------------------------------------
# which tokens are masked
# --------------------------------------------------------------------------


def _salience_gap(sal, mask):
    masked = sal[mask.bool()].mean()
    visible = sal[~mask.bool()].mean()
    return (masked - visible).item()


def test_sbm_masks_salient_tokens_random_does_not():
    B, L = 256, 49
    sal = torch.rand(B, L, generator=_gen(10))
    sbm = salience_guided_masking(sal, 0.75, generator=_gen(11))
    rnd = random_masking(sal, 0.75, generator=_gen(11))
    gap_sbm = _salience_gap(sal, sbm.mask)
    gap_rnd = _salience_gap(sal, rnd.mask)
    # ŝ ~ U(0,1), score = ŝ + U(0, 0.5): the masked 3/4 are far more
    # salient (the noise-free top-k gap would be 0.5).
    assert gap_sbm > 0.35
    # random masking ignores salience: the gap is sampling noise (~0.006 sd)
    assert abs(gap_rnd) < 0.03
    # noise keeps diversity: masked set is not exactly the top-k everywhere
    top = salience_guided_masking(sal, 0.75, noise_scale=0)
    assert not torch.equal(sbm.mask, top.mask)
    assert _salience_gap(sal, top.mask) > gap_sbm


def test_sbm_gap_on_real_token_salience():
    """Same property with salience computed from tokens (real spread)."""
    from mmsbam import token_salience
    tokens = torch.randn(128, 49, 16, generator=_gen(12))
    sal = token_salience(tokens)
    sbm = salience_guided_masking(sal, 0.6, generator=_gen(13))
    rnd = random_masking(sal, 0.6, generator=_gen(13))
    assert _salience_gap(sal, sbm.mask) > 0.1
    assert abs(_salience_gap(sal, rnd.mask)) < 0.03


def test_huge_noise_recovers_random():
    sal = torch.rand(256, 49, generator=_gen(14))
    res = salience_guided_masking(sal, 0.75, noise_scale=1e4,
                                  generator=_gen(15))
    assert abs(_salience_gap(sal, res.mask)) < 0.03


@pytest.mark.parametrize('ratio', RATIOS)
def test_zero_noise_masks_exact_top_k(ratio):
    B, L = 6, 49
    # distinct salience values so the top-k is unique
    sal = torch.stack([torch.randperm(L, generator=_gen(20 + b)).float() / L
                       for b in range(B)])
    res = salience_guided_masking(sal, ratio, noise_scale=0)
    k = _expected_masked(L, ratio)
    expected = np.zeros((B, L))
    order = np.argsort(-sal.numpy(), axis=1)[:, :k]  # k most salient
    np.put_along_axis(expected, order, 1.0, axis=1)
    np.testing.assert_array_equal(res.mask.numpy(), expected)
    # the generator is irrelevant when there is no noise
    res2 = salience_guided_masking(sal, ratio, noise_scale=0,
                                   generator=_gen(99))
    assert torch.equal(res.mask, res2.mask)


def test_zero_noise_per_sample_ratios_top_k():
    L = 49
    sal = torch.stack([torch.randperm(L, generator=_gen(30 + b)).float()
                       for b in range(4)])
    ratios = torch.tensor(RATIOS)
    res = salience_guided_masking(sal, ratios, noise_scale=0)
    for b, r in enumerate(ratios):
        k = _expected_masked(L, float(r))
        top = set(np.argsort(-sal[b].numpy())[:k].tolist())
        assert set(torch.nonzero(res.mask[b]).flatten().tolist()) == top


# --------------------------------------------------------------------------
# reproducibility
# --------------------------------------------------------------------------


@pytest.mark.parametrize('masking', ['sbm', 'random'])
def test_generator_seed_reproducible(masking):
    sal = torch.rand(4, 49, generator=_gen(40))
    fn = salience_guided_masking if masking == 'sbm' else random_masking
    a = fn(sal, 0.75, generator=_gen(123))
    b = fn(sal, 0.75, generator=_gen(123))
    c = fn(sal, 0.75, generator=_gen(124))
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.ids_restore, b.ids_restore)
    assert torch.equal(a.ids_keep, b.ids_keep)
    assert not torch.equal(a.mask, c.mask)


def test_global_seed_reproducible():
    sal = torch.rand(4, 49, generator=_gen(41))
    torch.manual_seed(5)
    a = salience_guided_masking(sal, 0.75)
    torch.manual_seed(5)
    b = salience_guided_masking(sal, 0.75)
    torch.manual_seed(6)
    c = salience_guided_masking(sal, 0.75)
    assert torch.equal(a.mask, b.mask)
    assert not torch.equal(a.mask, c.mask)


@pytest.mark.parametrize('seed', [0, 1, 2024])
def test_random_generator_reproduces_stock_mae(build_backbone, seed):
    """Documented design choice: RandomMaskGenerator draws torch.rand(B, L)
    exactly like MAEViT.random_masking, so a seed gives MAE's mask."""
    mae_vit = build_backbone('MAEViT')
    gen = MODELS.build(dict(type='RandomMaskGenerator'))
    assert isinstance(gen, RandomMaskGenerator)
    B, L, D = 3, 64, 8
    x = torch.randn(B, L, D, generator=_gen(seed))
    torch.manual_seed(seed)
    x_masked, mask_ref, ids_restore_ref = mae_vit.random_masking(x, 0.75)
    torch.manual_seed(seed)
    res = gen(torch.zeros(B, L), 0.75)
    assert torch.equal(res.mask, mask_ref)
    assert torch.equal(res.ids_restore, ids_restore_ref)
    gathered = torch.gather(x, 1, res.ids_keep.unsqueeze(-1).expand(-1, -1, D))
    assert torch.equal(gathered, x_masked)


def test_registered_salience_generator_matches_function():
    gen = MODELS.build(dict(type='SalienceMaskGenerator', noise_scale=0.3))
    assert isinstance(gen, SalienceMaskGenerator)
    assert gen.noise_scale == 0.3
    assert MODELS.build(dict(type='SalienceMaskGenerator')).noise_scale == 0.5
    sal = torch.rand(4, 49, generator=_gen(50))
    a = gen(sal, 0.6, generator=_gen(51))
    b = salience_guided_masking(sal, 0.6, 0.3, generator=_gen(51))
    c = salience_guided_masking(sal, 0.6, 0.5, generator=_gen(51))
    assert torch.equal(a.mask, b.mask)
    assert not torch.equal(a.mask, c.mask)  # noise_scale is really used


# --------------------------------------------------------------------------
# ids_restore
# --------------------------------------------------------------------------


@pytest.mark.parametrize('masking', ['sbm', 'random'])
def test_ids_restore_is_inverse_permutation_equal_counts(masking):
    B, L = 4, 49
    sal = torch.rand(B, L, generator=_gen(60))
    fn = salience_guided_masking if masking == 'sbm' else random_masking
    res = fn(sal, 0.75, generator=_gen(61))
    K = L - _expected_masked(L, 0.75)
    ids = res.ids_restore
    # a permutation of 0..L-1 per row
    assert torch.equal(ids.sort(dim=1).values, torch.arange(L).expand(B, L))
    # inverse of the keep order: position ids_keep[j] goes to slot j
    for b in range(B):
        for j in range(K):
            assert ids[b, res.ids_keep[b, j]] == j
    # mask convention of MAE: masked <=> restored from a mask-token row
    assert torch.equal(res.mask, (ids >= K).float())


def test_ids_restore_zero_noise_is_argsort_of_argsort():
    B, L = 3, 49
    sal = torch.rand(B, L, generator=_gen(62))
    res = salience_guided_masking(sal, 0.6, noise_scale=0)
    order = np.argsort(sal.numpy(), axis=1, kind='stable')
    np.testing.assert_array_equal(res.ids_restore.numpy(),
                                  np.argsort(order, axis=1))


@pytest.mark.parametrize('masking', ['sbm', 'random'])
def test_ids_restore_per_sample_counts_decoder_gather(masking):
    """Gather ``cat([visible slots, mask tokens])`` the way
    MAEPretrainDecoder does: every visible position gets its own token,
    every masked position a mask-token row, padding is never read."""
    B, L, D = 4, 49, 3
    ratios = torch.tensor([0.9, 0.45, 0.75, 0.6])
    sal = torch.rand(B, L, generator=_gen(70))
    fn = salience_guided_masking if masking == 'sbm' else random_masking
    res = fn(sal, ratios, generator=_gen(71))
    num_vis = [L - _expected_masked(L, float(r)) for r in ratios]
    K = max(num_vis)
    assert res.ids_keep.shape == (B, K)
    # token p of image b is (p, b, 1); mask tokens are (-1, -1, -1)
    pos = torch.arange(L, dtype=torch.float32)
    x = torch.stack([torch.stack([pos, torch.full((L, ), float(b)),
                                  torch.ones(L)], -1) for b in range(B)])
    visible = torch.gather(x, 1, res.ids_keep.unsqueeze(-1).expand(-1, -1, D))
    for b in range(B):  # padded slots become NaN: any read would show
        visible[b, num_vis[b]:] = float('nan')
    mask_tokens = torch.full((B, L - K, D), -1.0)  # L + 1 - (1 + K) rows
    x_ = torch.cat([visible, mask_tokens], dim=1)
    assert res.ids_restore.min() >= 0 and res.ids_restore.max() < L
    out = torch.gather(x_, 1, res.ids_restore.unsqueeze(-1).expand(-1, -1, D))
    assert not torch.isnan(out).any()
    for b in range(B):
        is_masked = res.mask[b].bool()
        assert int(is_masked.sum()) == L - num_vis[b]
        assert torch.equal(out[b, ~is_masked], x[b, ~is_masked])
        assert (out[b, is_masked] == -1).all()
        assert (res.ids_restore[b, is_masked] >= K).all()
        assert (res.ids_restore[b, ~is_masked] < num_vis[b]).all()
        # visible set == first num_vis[b] keep slots
        kept = set(res.ids_keep[b, :num_vis[b]].tolist())
        assert kept == set(torch.nonzero(~is_masked).flatten().tolist())


def test_visible_slots_and_padded_flag():
    sal = torch.rand(3, 49, generator=_gen(72))
    res = salience_guided_masking(sal, torch.tensor([0.9, 0.45, 0.45]),
                                  generator=_gen(73))
    assert res.padded
    slots = res.visible_slots()
    assert slots.sum(1).tolist() == [4, 26, 26]
    same = salience_guided_masking(sal, torch.tensor([0.6, 0.6, 0.6]),
                                   generator=_gen(73))
    assert not same.padded
    assert same.visible_slots().all()


def test_infinite_noise_scale_rejected():
    with pytest.raises(ValueError, match='noise_scale'):
        MODELS.build(
            dict(type='SalienceMaskGenerator', noise_scale=float('inf')))
    with pytest.raises(ValueError, match='noise_scale'):
        salience_guided_masking(torch.rand(2, 8), 0.5, float('nan'))



def test_zero_noise_breaks_salience_ties_at_random():
    """noise_scale=0 on a flat salience must not mask a fixed block of
    token indices: equal salience is ordered at random."""
    flat = torch.zeros(4, 49)
    a = salience_guided_masking(flat, 0.75, 0.0, generator=_gen(5)).mask
    b = salience_guided_masking(flat, 0.75, 0.0, generator=_gen(6)).mask
    block = torch.zeros(49)
    block[49 - a[0].sum().int():] = 1
    assert not torch.equal(a, b)
    assert not all(torch.equal(row, block) for row in a)
    # ... while distinct salience is still followed strictly
    sal = torch.rand(4, 49, generator=_gen(7))
    top = salience_guided_masking(sal, 0.75, 0.0, generator=_gen(8)).mask
    k = int(top[0].sum())
    expected = torch.zeros_like(sal).scatter_(
        1, sal.topk(k, dim=1).indices, 1.0)
    assert torch.equal(top, expected)
