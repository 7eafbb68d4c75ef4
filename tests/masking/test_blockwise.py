"""iBoT's blockwise mask generator (``IBOT.md`` section 1.6).

The reference below is written from the description of the official
``ImageFolderMask`` (cell-by-cell filling, one Python ``random`` stream)
and shares no code with :mod:`mmsbam.masking.blockwise`.
"""
import math
import random
import uuid

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from mmpretrain.registry import MODELS
from mmsbam.masking.blockwise import iBOTBlockMaskGenerator, ibot_mask_ratios


def _reference_ratio(means, variances):
    draws = []
    for mean, var in zip(means, variances):
        draws.append(
            random.uniform(mean - var, mean + var) if var > 0 else mean)
    return draws[0] if len(draws) == 1 else random.choice(draws)


def _reference_block_mask(H, W, ratio, aspect=(0.3, 1 / 0.3)):
    """BEiT-style blocks, filled one cell at a time."""
    high = ratio * H * W
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    mask = [[False] * W for _ in range(H)]
    count = 0
    while count < high:
        budget = high - count
        delta = 0
        for _ in range(10):
            area = random.uniform((min(H, W) // 3)**2, budget)
            a = math.exp(random.uniform(*log_aspect))
            h = int(round(math.sqrt(area * a)))
            w = int(round(math.sqrt(area / a)))
            if h < H and w < W:
                top = random.randint(0, H - h)
                left = random.randint(0, W - w)
                already = sum(mask[i][j] for i in range(top, top + h)
                              for j in range(left, left + w))
                if 0 < h * w - already <= budget:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if not mask[i][j]:
                                mask[i][j] = True
                                delta += 1
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return np.array(mask, dtype=bool)


@pytest.fixture
def hub_epoch():
    """A fresh current MessageHub; returns a setter of its 'epoch' info."""
    hub = MessageHub.get_instance(f'test_blockwise_{uuid.uuid4().hex}')

    def set_epoch(epoch):
        hub.update_info('epoch', epoch)

    return set_epoch


def test_masks_match_a_cell_by_cell_reference_on_the_same_random_stream():
    gen = iBOTBlockMaskGenerator()
    for H, W in [(14, 14), (6, 6), (7, 10)]:
        random.seed(123)
        got = gen(64, H, W, epoch=0).numpy()
        random.seed(123)
        want = np.stack([
            _reference_block_mask(H, W, _reference_ratio((0., .3), (0., .2)))
            for _ in range(64)
        ])
        np.testing.assert_array_equal(got, want)


def test_output_is_a_bool_batch_of_grids_including_non_square_ones():
    gen = iBOTBlockMaskGenerator(pred_ratio=0.4, pred_ratio_var=0.)
    masks = gen(3, 6, 10, epoch=0)
    assert masks.shape == (3, 6, 10) and masks.dtype == torch.bool
    assert gen(0, 6, 10, epoch=0).shape == (0, 6, 10)


@pytest.mark.parametrize('H,W', [(14, 14), (7, 7), (6, 6), (3, 5)])
def test_block_count_never_exceeds_ratio_times_grid_and_is_positive(H, W):
    gen = iBOTBlockMaskGenerator()
    random.seed(0)
    for i in range(300):
        ratio = random.uniform(0.05, 1.0)
        count = int(gen.block_mask(H, W, ratio).sum())
        assert count <= ratio * H * W
        if ratio * H * W >= max((min(H, W) // 3)**2, 1):
            assert count > 0, (H, W, ratio)


def test_ratio_zero_gives_an_empty_mask():
    gen = iBOTBlockMaskGenerator()
    assert not gen.block_mask(14, 14, 0.0).any()
    assert not iBOTBlockMaskGenerator(pred_shape='rand').block_mask(
        14, 14, 0.0).any()


def test_default_ratios_leave_about_half_of_the_masks_empty():
    gen = iBOTBlockMaskGenerator()
    random.seed(1)
    counts = gen(4000, 14, 14, epoch=0).flatten(1).sum(1).float()
    empty = (counts == 0).float().mean().item()
    assert abs(empty - 0.5) < 0.03  # sd 0.008
    masked = counts[counts > 0] / 196
    # r ~ U(0.1, 0.5): blocks may fall short of r, never exceed it
    assert masked.max() <= 0.5 and masked.min() > 0.02
    assert 0.2 < masked.mean() < 0.3


def test_default_ratio_draws_are_half_zero_half_uniform_between_01_and_05():
    gen = iBOTBlockMaskGenerator()
    random.seed(2)
    ratios = np.array([gen.ratio(epoch=0) for _ in range(4000)])
    assert abs((ratios == 0).mean() - 0.5) < 0.03
    drawn = ratios[ratios > 0]
    assert drawn.min() >= 0.1 and drawn.max() <= 0.5
    assert abs(drawn.mean() - 0.3) < 0.01


def test_scalar_ratio_without_variance_is_constant():
    gen = iBOTBlockMaskGenerator(pred_ratio=0.3, pred_ratio_var=0)
    assert {gen.ratio(epoch=0) for _ in range(10)} == {0.3}
    # one variance for every entry, as the official code does
    gen = iBOTBlockMaskGenerator(pred_ratio=[0.2, 0.4], pred_ratio_var=0.1)
    assert gen.ratio_table == [(0.2, 0.1), (0.4, 0.1)]


def test_rand_shape_masks_exactly_int_of_ratio_times_grid_cells():
    gen = iBOTBlockMaskGenerator(pred_shape='rand')
    random.seed(3)
    for ratio in [0.1, 0.3, 0.37, 0.5, 1.0]:
        for H, W in [(14, 14), (7, 9)]:
            assert gen.block_mask(H, W, ratio).sum() == int(ratio * H * W)
    masks = gen(500, 14, 14, epoch=0)
    counts = masks.flatten(1).sum(1)
    assert set(counts[counts > 0].tolist()) <= set(range(19, 99))
    # the cells are spread over the grid, not a fixed pattern
    assert masks.any(0).all()


def test_blocks_reach_the_bottom_row_and_the_right_column():
    gen = iBOTBlockMaskGenerator(pred_ratio=0.3, pred_ratio_var=0.)
    random.seed(4)
    masks = gen(300, 14, 14, epoch=0)
    # an exclusive randint bound (BEiTMaskGenerator) never reaches them
    assert masks[:, -1, :].any() and masks[:, :, -1].any()
    assert masks[:, 0, :].any() and masks[:, :, 0].any()


def test_same_python_seed_gives_the_same_masks_and_another_seed_others():
    gen = iBOTBlockMaskGenerator()
    random.seed(5)
    a = gen(32, 14, 14, epoch=0)
    random.seed(5)
    b = gen(32, 14, 14, epoch=0)
    random.seed(6)
    c = gen(32, 14, 14, epoch=0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pred_start_epoch_gives_empty_masks_before_it(hub_epoch):
    gen = iBOTBlockMaskGenerator(pred_ratio=0.3, pred_ratio_var=0.,
                                 pred_start_epoch=2)
    state = random.getstate()
    assert not gen(16, 14, 14, epoch=1).any()
    assert random.getstate() == state  # nothing drawn, as the official code
    assert gen(16, 14, 14, epoch=2).flatten(1).any(1).all()
    hub_epoch(1)  # epoch from MMEngine's MessageHub when not given
    assert not gen(16, 14, 14).any()
    assert (ibot_mask_ratios(gen, 4) == 0).all()
    hub_epoch(3)
    assert gen(16, 14, 14).flatten(1).any(1).all()
    assert torch.allclose(ibot_mask_ratios(gen, 4), torch.full((4, ), 0.3))


def test_ibot_mask_ratios_are_one_ratio_draw_per_image():
    gen = iBOTBlockMaskGenerator()
    random.seed(7)
    ratios = ibot_mask_ratios(gen, 50, epoch=0)
    random.seed(7)
    want = [_reference_ratio((0., .3), (0., .2)) for _ in range(50)]
    assert ratios.shape == (50, ) and ratios.dtype == torch.float32
    assert torch.allclose(ratios, torch.tensor(want, dtype=torch.float32))


def test_is_built_from_the_mmpretrain_models_registry():
    gen = MODELS.build(
        dict(type='iBOTBlockMaskGenerator', pred_ratio=[0.0, 0.3],
             pred_ratio_var=[0.0, 0.2], pred_shape='rand'))
    assert isinstance(gen, iBOTBlockMaskGenerator)
    assert gen.pred_shape == 'rand' and not list(gen.parameters())


@pytest.mark.parametrize('kwargs,key', [
    (dict(pred_ratio=1.2), 'pred_ratio'),
    (dict(pred_ratio=-0.1), 'pred_ratio'),
    (dict(pred_ratio=[]), 'pred_ratio'),
    (dict(pred_ratio='0.3'), 'pred_ratio'),
    (dict(pred_ratio=0.1, pred_ratio_var=0.2), 'pred_ratio_var'),
    (dict(pred_ratio=0.9, pred_ratio_var=0.2), 'pred_ratio_var'),
    (dict(pred_ratio=[0., .3, .5], pred_ratio_var=[0., .2]),
     'pred_ratio_var'),
    (dict(pred_aspect_ratio=(0., 3.)), 'pred_aspect_ratio'),
    (dict(pred_aspect_ratio=(0.3, )), 'pred_aspect_ratio'),
    (dict(pred_shape='grid'), 'pred_shape'),
    (dict(pred_start_epoch=-1), 'pred_start_epoch'),
    (dict(pred_start_epoch=1.5), 'pred_start_epoch'),
])
def test_bad_arguments_raise_a_value_error_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        iBOTBlockMaskGenerator(**kwargs)


def test_bad_grid_or_ratio_raise_value_errors():
    gen = iBOTBlockMaskGenerator()
    with pytest.raises(ValueError, match='height and width'):
        gen.block_mask(0, 14, 0.3)
    with pytest.raises(ValueError, match='ratio'):
        gen.block_mask(14, 14, 1.5)
