"""Salience-guided blockwise masking (``docs/method.md``, "Salience-guided
blockwise masking"): BEiT's blocks placed where the salience is."""
import pytest
import torch

from mmpretrain.registry import MODELS
from mmsbam.masking import (SalienceBlockMaskGenerator, num_visible_tokens,
                            salience_block_masking, salience_guided_masking)
from mmsbam.masking.generators import masking_from_mask


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _blobs(B, H, W, seed=0, sigma=2.0):
    """Smooth salience: one Gaussian blob per image at a random centre."""
    g = _gen(seed)
    cy = torch.rand(B, 1, 1, generator=g) * (H - 1)
    cx = torch.rand(B, 1, 1, generator=g) * (W - 1)
    y = torch.arange(H, dtype=torch.float32)[None, :, None]
    x = torch.arange(W, dtype=torch.float32)[None, None, :]
    return torch.exp(-((y - cy)**2 + (x - cx)**2) / (2 * sigma**2))


def _components(mask):
    """4-connected components of one (H, W) 0/1 mask."""
    H, W = mask.shape
    seen, count = set(), 0
    for start in zip(*torch.nonzero(mask, as_tuple=True)):
        start = (int(start[0]), int(start[1]))
        if start in seen:
            continue
        count += 1
        stack = [start]
        seen.add(start)
        while stack:
            i, j = stack.pop()
            for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if (0 <= a < H and 0 <= b < W and mask[a, b]
                        and (a, b) not in seen):
                    seen.add((a, b))
                    stack.append((a, b))
    return count


def _salience_gap(sal, mask):
    """Mean salience of masked minus visible tokens, over the batch."""
    sal, mask = sal.reshape(mask.shape), mask.bool()
    return (sal[mask].mean() - sal[~mask].mean()).item()


# --------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------


@pytest.mark.parametrize('grid', [(14, 14), (7, 7), (8, 12), (4, 4), (1, 9)])
@pytest.mark.parametrize('ratio', [0.05, 0.25, 0.4, 0.6, 0.75, 0.95])
def test_exact_count_for_every_ratio_and_grid(grid, ratio):
    H, W = grid
    L, B = H * W, 6
    sal = torch.rand(B, L, generator=_gen(0))
    num_masked = torch.full((B, ), L - int(L * (1 - ratio)))
    mask = salience_block_masking(sal,
                                  num_masked,
                                  grid=grid,
                                  generator=_gen(1))
    assert mask.shape == (B, L) and mask.dtype == torch.float32
    assert ((mask == 0) | (mask == 1)).all()
    assert mask.sum(1).tolist() == num_masked.float().tolist()


def test_per_image_counts_from_none_to_all():
    L = 196
    num_masked = torch.tensor([0, 1, 15, 16, 79, 150, 195, 196])
    mask = salience_block_masking(torch.rand(8, L, generator=_gen(2)),
                                  num_masked,
                                  generator=_gen(3))
    assert mask.sum(1).long().tolist() == num_masked.tolist()


def test_three_dim_salience_equals_flat_salience_with_grid():
    sal = _blobs(4, 8, 12)
    a = salience_block_masking(sal, 30, generator=_gen(4))
    b = salience_block_masking(sal.reshape(4, 96),
                               30,
                               grid=(8, 12),
                               generator=_gen(4))
    assert torch.equal(a, b)


# --------------------------------------------------------------------------
# shape of the masks
# --------------------------------------------------------------------------


def test_masks_are_few_blocks_where_per_token_sbm_scatters():
    B, H, W = 48, 14, 14
    sal = torch.rand(B, H * W, generator=_gen(5))
    block = salience_block_masking(sal, 79, generator=_gen(6))
    sbm = salience_guided_masking(sal, 0.4, generator=_gen(6)).mask
    blocks = sum(_components(m.view(H, W)) for m in block) / B
    scattered = sum(_components(m.view(H, W)) for m in sbm) / B
    assert blocks < 2.5 < 10 < scattered


def test_one_block_is_an_exact_rectangle():
    # area and aspect fixed: one 4 x 4 block, no fill
    sal = torch.rand(16, 196, generator=_gen(7))
    mask = salience_block_masking(sal,
                                  16,
                                  min_num_patches=16,
                                  max_num_patches=16,
                                  min_aspect=1,
                                  max_aspect=1,
                                  generator=_gen(8))
    for m in mask.view(16, 14, 14):
        rows = m.any(1).nonzero().flatten()
        cols = m.any(0).nonzero().flatten()
        assert len(rows) == len(cols) == 4
        assert m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()


# --------------------------------------------------------------------------
# where the blocks go
# --------------------------------------------------------------------------


def test_greedy_block_covers_a_salient_square_exactly():
    sal = 0.2 * torch.rand(4, 14, 14, generator=_gen(9))
    sal[:, 5:9, 7:11] = 1.0
    mask = salience_block_masking(sal,
                                  16,
                                  min_num_patches=16,
                                  max_num_patches=16,
                                  min_aspect=1,
                                  max_aspect=1,
                                  noise_scale=0,
                                  generator=_gen(10)).view(4, 14, 14)
    expected = torch.zeros(14, 14)
    expected[5:9, 7:11] = 1
    assert torch.equal(mask, expected.expand(4, 14, 14))


def test_greedy_masks_cover_the_salient_region_first():
    sal = 0.3 * torch.rand(32, 14, 14, generator=_gen(11))
    sal[:, 3:9, 4:10] += 0.7  # a 6 x 6 salient square
    mask = salience_block_masking(sal, 36, noise_scale=0,
                                  generator=_gen(12)).view(32, 14, 14)
    assert _salience_gap(sal, mask) > 0.4
    inside = mask[:, 3:9, 4:10].sum() / mask.sum()
    assert inside > 0.75


def test_salience_bias_falls_to_zero_as_noise_grows():
    B, H, W = 128, 14, 14
    sal = _blobs(B, H, W, seed=13)
    gaps = [
        _salience_gap(
            sal,
            salience_block_masking(sal, 59, noise_scale=s, generator=_gen(14)))
        for s in (0.0, 0.5, 1e6)
    ]
    assert gaps[0] > gaps[1] > 0.15
    # BEiT's random corners; the rest (about 0.02) is the edge effect of
    # blocks (centre cells are covered more, and so are blob centres)
    assert abs(gaps[2]) < 0.05


def test_flat_salience_with_no_noise_places_blocks_at_random():
    flat = torch.zeros(2, 196)
    a = salience_block_masking(flat, 40, noise_scale=0, generator=_gen(15))
    b = salience_block_masking(flat, 40, noise_scale=0, generator=_gen(16))
    assert not torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


# --------------------------------------------------------------------------
# randomness
# --------------------------------------------------------------------------


def test_same_seed_same_masks_different_seeds_differ():
    sal = torch.rand(8, 196, generator=_gen(17))
    a = salience_block_masking(sal, 79, generator=_gen(18))
    b = salience_block_masking(sal, 79, generator=_gen(18))
    c = salience_block_masking(sal, 79, generator=_gen(19))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_global_generator_is_used_when_none_is_given():
    sal = torch.rand(4, 196, generator=_gen(20))
    torch.manual_seed(21)
    a = salience_block_masking(sal, 79)
    torch.manual_seed(21)
    assert torch.equal(a, salience_block_masking(sal, 79))


# --------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, name', [
    (dict(num_masked=197), 'num_masked'),
    (dict(num_masked=-1), 'num_masked'),
    (dict(num_masked=torch.tensor([1.0, 2.0])), 'num_masked'),
    (dict(num_masked=torch.tensor([1, 2, 3])), 'num_masked'),
    (dict(min_num_patches=0), 'min_num_patches'),
    (dict(max_num_patches=0.5), 'max_num_patches'),
    (dict(min_aspect=0), 'min_aspect'),
    (dict(max_aspect=-2.0), 'max_aspect'),
    (dict(noise_scale=-0.1), 'noise_scale'),
    (dict(noise_scale=float('inf')), 'noise_scale'),
    (dict(grid=(10, 10)), 'grid'),
])
def test_bad_arguments_are_named(kwargs, name):
    args = dict(salience=torch.rand(2, 196), num_masked=79)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        salience_block_masking(**args)


def test_bad_salience_shape_and_non_square_grid_are_named():
    with pytest.raises(ValueError, match='salience'):
        salience_block_masking(torch.rand(196), 10)
    with pytest.raises(ValueError, match='grid'):
        salience_block_masking(torch.rand(2, 96), 10)
    with pytest.raises(ValueError, match='grid'):
        salience_block_masking(torch.rand(2, 8, 12), 10, grid=(12, 8))
    with pytest.raises(ValueError, match='grid'):
        SalienceBlockMaskGenerator(grid=(0, 14))


# --------------------------------------------------------------------------
# the registered generator
# --------------------------------------------------------------------------


def test_generator_returns_a_consistent_masking_result():
    gen = MODELS.build(dict(type='SalienceBlockMaskGenerator'))
    assert gen.uses_salience
    assert 'SalienceBlockMaskGenerator(noise_scale=0.5' in repr(gen)
    B, L = 5, 196
    sal = torch.rand(B, L, generator=_gen(22))
    res = gen(sal, 0.4, generator=_gen(23))
    k = int(L * 0.6)
    assert res.mask.sum(1).tolist() == [float(L - k)] * B
    assert res.num_visible.tolist() == [k] * B and not res.padded
    assert res.ids_keep.shape == (B, k)
    assert (res.mask.gather(1, res.ids_keep) == 0).all()
    # equal counts: ids_restore is the inverse of visible-then-masked order
    masked = torch.argsort(res.mask, dim=1, stable=True)[:, k:]
    order = torch.cat([res.ids_keep, masked], 1)
    assert torch.equal(order.gather(1, res.ids_restore),
                       torch.arange(L).expand(B, L))
    same = salience_block_masking(sal, L - k, generator=_gen(23))
    assert torch.equal(res.mask, same)


def test_generator_takes_per_image_counts_and_a_grid():
    gen = SalienceBlockMaskGenerator(noise_scale=0.0, grid=(8, 12))
    num_visible = torch.tensor([96, 60, 20])
    res = gen(torch.rand(3, 96), 0.0, allow_zero=True, num_visible=num_visible)
    assert res.num_visible.tolist() == [96, 60, 20] and res.padded
    assert res.mask.sum(1).tolist() == [0.0, 36.0, 76.0]
    ratios = torch.tensor([0.0, 0.5])
    res = gen(torch.rand(2, 96), ratios, allow_zero=True)
    expected = num_visible_tokens(96, ratios, 2, allow_zero=True)
    assert torch.equal(res.num_visible, expected)
    with pytest.raises(ValueError, match='num_visible'):
        gen(torch.rand(3, 96), 0.5, num_visible=torch.tensor([1, 2, 97]))
    with pytest.raises(ValueError, match='mask_ratio'):
        gen(torch.rand(3, 96), 0.0)


def test_masking_from_mask_keeps_the_mask_and_counts():
    mask = torch.tensor([[1., 0., 0., 1.], [0., 0., 0., 1.]])
    res = masking_from_mask(mask)
    assert torch.equal(res.mask, mask)
    assert res.num_visible.tolist() == [2, 3] and res.padded
    assert res.ids_keep.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert res.visible_slots().tolist() == [[True, True, False]] + [[True] * 3]
