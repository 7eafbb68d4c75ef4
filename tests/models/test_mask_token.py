"""SBAM for mask-token methods: the pipeline mask is rewritten in place with
a salience mask of the same shape, dtype and per-image count, and the
method's loss reads the rewritten mask (CAE: tests/models/test_cae.py)."""
import re

import pytest
import torch

import mmsbam  # noqa: F401
from mmsbam.masking import masking_statistics
from mmpretrain.registry import MODELS

TINY = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
VIT = dict(arch=TINY, img_size=28, patch_size=4, in_channels=1)


def beit(**kwargs):
    return MODELS.build(dict(type='SBAMBEiTPretrainViT', **VIT, **kwargs))


def swin(**kwargs):
    return MODELS.build(dict(
        type='SBAMSimMIMSwinTransformer', img_size=32, out_indices=(1, ),
        arch=dict(embed_dims=32, depths=[1, 1], num_heads=[2, 4]),
        stage_cfgs=dict(block_cfgs=dict(window_size=4)), **kwargs))


def block_masks(batch, counts, side=7, seed=0):
    """(B, side, side) long masks with the given per-image counts."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, side * side, dtype=torch.long)
    for b, c in enumerate(counts):
        mask[b, torch.randperm(side * side, generator=g)[:c]] = 1
    return mask.view(batch, side, side)


@pytest.mark.parametrize('dtype', [torch.long, torch.float32, torch.bool])
def test_mask_rewritten_in_place_with_same_counts_dtype_shape(dtype):
    model = beit()
    x = torch.randn(4, 1, 28, 28)
    counts = [20, 5, 0, 30]
    mask = block_masks(4, counts).to(dtype)
    before = mask.clone()
    ptr = mask.data_ptr()
    model(x, mask)
    assert mask.data_ptr() == ptr and mask.dtype == dtype
    assert mask.shape == before.shape
    assert mask.flatten(1).long().sum(1).tolist() == counts
    assert not torch.equal(mask, before)  # the tokens changed
    record = model.masker.last_masking
    assert torch.equal(record.mask.view_as(mask).to(dtype), mask)


def test_flattened_bool_mask_as_cae_and_maskfeat_pass_it():
    model = beit()
    mask = block_masks(3, [10, 10, 10]).flatten(1).bool()
    model(torch.randn(3, 1, 28, 28), mask)
    assert mask.shape == (3, 49) and mask.sum(1).tolist() == [10, 10, 10]


@pytest.mark.parametrize('values, seen', [
    ((0, 2), 'holds 2.'), ((0.0, 0.5, 1.0), 'holds 0.5.'),
    ((0, 255), 'holds 255.'), ((0.0, float('nan')), 'holds nan.'),
    ((-1, 0, 3), 'holds -1, 3.')])
def test_a_mask_that_is_not_0_1_is_refused_naming_its_values(values, seen):
    """A pipeline mask with other values (a 0/255 image, soft weights) is
    refused: counting or thresholding it would change the method."""
    model = beit()
    mask = block_masks(2, [10, 12]).to(torch.float32)
    bad = torch.tensor(values, dtype=torch.float32)
    mask.view(-1)[:len(values)] = bad
    if all(float(v).is_integer() for v in values):
        mask = mask.long()
    before = mask.clone()
    with pytest.raises(ValueError, match=r'0/1.*' + re.escape(seen)):
        model(torch.randn(2, 1, 28, 28), mask)
    assert torch.equal(mask.nan_to_num(7), before.nan_to_num(7))  # as given


def test_masked_tokens_are_more_salient():
    torch.manual_seed(0)
    model = beit()
    mask = block_masks(16, [20] * 16)
    model(torch.randn(16, 1, 28, 28), mask)
    record = model.masker.last_masking
    stats = masking_statistics(record.salience, record.mask)
    assert stats['salience_masked'] > stats['salience_visible'] + 0.1


def test_sbam_off_keeps_counts_and_masks_at_random():
    torch.manual_seed(0)
    model = beit()
    model.masker.sbam_enabled = False
    mask = block_masks(64, [20] * 64)
    model(torch.randn(64, 1, 28, 28), mask)
    record = model.masker.last_masking
    assert mask.flatten(1).sum(1).eq(20).all()
    stats = masking_statistics(record.salience, record.mask)
    assert abs(stats['salience_masked'] - stats['salience_visible']) < 0.05


def test_same_seed_same_masks():
    model = beit()
    x = torch.randn(4, 1, 28, 28)
    masks = []
    for _ in range(2):
        torch.manual_seed(3)
        mask = block_masks(4, [20] * 4)
        model(x, mask)
        masks.append(mask)
    assert torch.equal(*masks)


def test_amr_moves_each_pipeline_ratio_by_its_offset():
    """AMR's r_b - r_base added to each image's pipeline ratio; the count
    follows the new ratio as MAE rounds it."""
    from mmsbam.masking import adaptive_mask_ratio
    model = beit(masker=dict(mask_ratio=0.4,
                             amr=dict(ratio_var=0.1, delta=0.2)))
    counts = [20, 10, 20, 30, 20, 15, 25, 20]
    mask = block_masks(8, counts)
    x = torch.randn(8, 1, 28, 28) * torch.linspace(0.1, 4, 8).view(-1, 1, 1,
                                                                   1)
    model(x, mask)
    record = model.masker.last_masking
    offset = adaptive_mask_ratio(record.salience, 0.4, 0.1, 0.2) - 0.4
    expected_ratio = torch.tensor(counts) / 49 + offset
    assert torch.allclose(record.ratio, expected_ratio.float(), atol=1e-6)
    expected = 49 - torch.floor(49 * (1 - record.ratio.double())).long()
    assert torch.equal(mask.flatten(1).sum(1), expected)
    assert len(set(offset.tolist())) > 1  # AMR really varies here


def test_amr_warm_up_keeps_the_pipeline_counts():
    model = beit(masker=dict(mask_ratio=0.4, amr=dict(ratio_var=0.1)))
    model.masker.sbam_enabled = False
    mask = block_masks(4, [20, 10, 0, 30])
    model(torch.randn(4, 1, 28, 28), mask)
    assert mask.flatten(1).sum(1).tolist() == [20, 10, 0, 30]


def test_simmim_ranks_whole_cells_and_keeps_the_cell_count():
    model = swin(mask_unit=2)
    cells = block_masks(4, [9, 9, 4, 12], side=4)  # 4 x 4 cells of 2 x 2
    mask = cells.repeat_interleave(2, 1).repeat_interleave(2, 2).float()
    model(torch.randn(4, 3, 32, 32), mask)
    new_cells = mask[:, ::2, ::2]
    assert torch.equal(
        new_cells.repeat_interleave(2, 1).repeat_interleave(2, 2), mask)
    assert new_cells.flatten(1).sum(1).tolist() == [9, 9, 4, 12]
    assert model.masker.last_masking.mask.shape == (4, 16)


def test_simmim_refuses_a_mask_finer_than_its_cells():
    model = swin(mask_unit=2)
    mask = block_masks(2, [20, 20], side=8).float()
    with pytest.raises(ValueError, match='mask_unit'):
        model(torch.randn(2, 3, 32, 32), mask)


@pytest.mark.parametrize('bad', [0, -1, 1.5, True])
def test_bad_mask_unit_is_refused(bad):
    with pytest.raises(ValueError, match='mask_unit'):
        beit(mask_unit=bad)


def test_only_embedding_salience():
    with pytest.raises(ValueError, match='salience_source'):
        beit(masker=dict(salience_source='attention'))


def test_state_dicts_equal_the_stock_classes():
    for sbam, stock in [(beit(), 'BEiTPretrainViT')]:
        ref = MODELS.build(dict(type=stock, **VIT))
        assert sbam.state_dict().keys() == ref.state_dict().keys()


def test_simmim_loss_reads_the_sbam_mask():
    from mmpretrain.structures import DataSample
    model = MODELS.build(dict(
        type='SimMIM',
        backbone=dict(
            type='SBAMSimMIMSwinTransformer', img_size=32, mask_unit=2,
            out_indices=(1, ),
            arch=dict(embed_dims=32, depths=[1, 1], num_heads=[2, 4]),
            stage_cfgs=dict(block_cfgs=dict(window_size=4))),
        neck=dict(type='SimMIMLinearDecoder', in_channels=64,
                  encoder_stride=8),
        head=dict(type='SimMIMHead', patch_size=4,
                  loss=dict(type='PixelReconstructionLoss', criterion='L1',
                            channel=3))))
    seen = {}
    original = model.head.loss
    model.head.loss = lambda pred, target, mask: (
        seen.setdefault('mask', mask.clone()), original(pred, target,
                                                        mask))[1]
    cells = block_masks(2, [9, 9], side=4)
    samples = [DataSample() for _ in range(2)]
    for sample, c in zip(samples, cells):
        sample.set_mask(c.repeat_interleave(2, 0).repeat_interleave(2, 1))
    model.loss(torch.randn(2, 3, 32, 32), samples)
    sbam = model.backbone.masker.last_masking.mask.view(2, 4, 4)
    expected = sbam.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert torch.equal(seen['mask'].float(), expected)


def test_salience_block_generator_keeps_the_counts():
    model = beit(masker=dict(mask_generator=dict(
        type='SalienceBlockMaskGenerator', min_num_patches=4)))
    mask = block_masks(4, [20, 12, 0, 30])
    model(torch.randn(4, 1, 28, 28), mask)
    assert mask.flatten(1).sum(1).tolist() == [20, 12, 0, 30]


def test_wrong_channel_count_is_named():
    model = beit()
    with pytest.raises(ValueError, match='3-channel images'):
        model(torch.randn(2, 3, 28, 28), block_masks(2, [20, 20]))


def test_nan_pixels_are_refused():
    x = torch.randn(2, 1, 28, 28)
    x[0, 0, 0, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        beit()(x, block_masks(2, [20, 20]))
