"""BootMAE's masks: exact block and total counts, the per-batch roll, the
official ordering against a direct float64 reference, and reproducibility
from the seed."""
import random

import numpy as np
import pytest
import torch

from mmpretrain.registry import MODELS

from mmsbam.models.bootmae.bootmae_mask_generator import (bootmae_block_mask,
                                                          rolled_visible)

OFFICIAL = dict(type='BootMAEMaskGenerator', num_block=120, num_masked=147,
                min_block=16, max_block=60, max_roll=3)


def _generator(**kwargs):
    return MODELS.build(dict(OFFICIAL, **kwargs))


def test_block_masks_have_exactly_num_block_cells():
    gen = _generator()
    random.seed(0)
    blocks = gen.block_masks(64, 14, 14)
    assert blocks.shape == (64, 196) and blocks.dtype == torch.bool
    assert (blocks.sum(1) == 120).all()
    # blocks, not scattered cells: most masked cells have a masked
    # 4-neighbour
    grid = blocks.reshape(64, 14, 14).numpy()
    padded = np.pad(grid, ((0, 0), (1, 1), (1, 1)))
    neighbour = (padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1]
                 | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:])
    assert (neighbour & grid).sum() / grid.sum() > 0.95


def test_tiny_blocks_exact_and_reach_the_far_edges():
    """The Fashion-MNIST setting: 30 of 49 cells; inclusive ``randint``
    corners put blocks on the last row and column too."""
    random.seed(1)
    masks = np.stack([bootmae_block_mask(7, 7, 30, 4, 15,
                                         (np.log(0.3), np.log(1 / 0.3)))
                      for _ in range(200)])
    assert (masks.reshape(200, -1).sum(1) == 30).all()
    assert masks[:, -1, :].any() and masks[:, :, -1].any()


def _reference_visible(blocks, noise, roll, num_visible):
    """The official lines in float64 and plain Python: key = m - u
    (``argsort(1 - ((1 - m) + u))``), ascending; roll right by ``roll``;
    the first ``num_visible`` cells stay visible."""
    out = []
    for m_row, u_row in zip(blocks.tolist(), noise.double().tolist()):
        keys = [m - u for m, u in zip(m_row, u_row)]
        order = sorted(range(len(keys)), key=lambda i: keys[i])
        order = order[-roll:] + order[:-roll] if roll else order
        masked = [True] * len(keys)
        for i in order[:num_visible]:
            masked[i] = False
        out.append(masked)
    return torch.tensor(out)


@pytest.mark.parametrize('roll', [0, 1, 3])
def test_ordering_and_roll_match_the_official_lines(roll):
    random.seed(2)
    gen = _generator()
    blocks = gen.block_masks(8, 14, 14)
    noise = torch.rand(8, 196, generator=torch.Generator().manual_seed(3))
    mask = rolled_visible(blocks, noise, roll, 49)
    assert torch.equal(mask, _reference_visible(blocks.int(), noise, roll,
                                                49))
    # the roll exposes exactly `roll` block cells and masks every other
    # block cell; the rest of the 147 are random non-block cells
    exposed = (blocks & ~mask).sum(1)
    assert (exposed == roll).all()
    assert (mask.sum(1) == 147).all()
    assert ((mask & ~blocks).sum(1) == 27 + roll).all()


def test_forward_draws_one_roll_per_batch_and_all_rolls_occur():
    gen = _generator()
    random.seed(4)
    torch.manual_seed(4)
    rolls = set()
    for _ in range(40):
        state = random.getstate()
        blocks = gen.block_masks(6, 14, 14)
        random.setstate(state)  # forward redraws the same blocks
        mask = gen(6, 14, 14)
        assert mask.shape == (6, 196) and (mask.sum(1) == 147).all()
        exposed = (blocks & ~mask).sum(1)
        assert (exposed == exposed[0]).all()  # one k for the batch
        rolls.add(int(exposed[0]))
    assert rolls == {0, 1, 2, 3}


def test_same_seed_same_masks_other_seed_other_masks():
    gen = _generator()

    def draw(seed):
        random.seed(seed)
        torch.manual_seed(seed)
        return [gen(4, 14, 14) for _ in range(3)]

    a, b, c = draw(0), draw(0), draw(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[1])
    assert not any(torch.equal(x, y) for x, y in zip(a, c))


@pytest.mark.parametrize('kwargs, word', [
    (dict(num_block=150), 'num_masked'),
    (dict(max_roll=-1), 'max_roll'),
    (dict(min_block=0), 'min_block'),
    (dict(max_block=8), 'max_block'),
    (dict(aspect_ratio=(2.0, 1.0)), 'aspect_ratio'),
])
def test_bad_arguments_are_refused_by_name(kwargs, word):
    with pytest.raises(ValueError, match=word):
        _generator(**kwargs)


def test_grid_too_small_is_refused():
    gen = _generator()
    with pytest.raises(ValueError, match='grid'):
        gen(2, 7, 7)
