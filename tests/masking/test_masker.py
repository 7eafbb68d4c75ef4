"""``SalienceMasker``: the masking core every SBAM model composes.

References are the pure functions of ``mmsbam.masking`` (tested against
float64 formulas in ``test_salience.py`` / ``test_generators.py``) and the
numpy salience of ``conftest.py``.
"""
import logging

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from mmpretrain.registry import MODELS

from mmsbam import SalienceMasker, SBAMViT
from mmsbam.masking import (MaskingRecord, adaptive_mask_ratio,
                            random_masking, salience_guided_masking)


def _masker(**kwargs):
    return MODELS.build(dict(type='SalienceMasker', mask_ratio=0.75,
                             **kwargs))


def _tokens(B=4, L=64, D=16, seed=0):
    return torch.randn(B, L, D, generator=torch.Generator().manual_seed(seed))


def test_is_parameter_free_module():
    masker = _masker(amr=dict(ratio_var=0.1))
    assert isinstance(masker, torch.nn.Module)
    assert masker.state_dict() == {}
    assert list(masker.parameters()) == []


def test_masks_like_the_pure_functions(np_token_salience):
    """Same seed -> the same mask as salience_guided_masking on the
    reference salience, and the record holds what was done."""
    tokens = _tokens()
    masker = _masker(noise_scale=0.5)
    torch.manual_seed(3)
    masking = masker(tokens)
    salience = torch.from_numpy(np_token_salience(tokens.numpy())).float()
    torch.manual_seed(3)
    expected = salience_guided_masking(salience, 0.75, 0.5)
    assert torch.equal(masking.mask, expected.mask)
    assert torch.equal(masking.ids_restore, expected.ids_restore)
    record = masker.last_masking
    assert isinstance(record, MaskingRecord)
    assert record.masking is masking and record.mask is masking.mask
    assert torch.allclose(record.salience, salience, atol=1e-6)
    assert torch.equal(record.ratio, torch.full((4, ), 0.75))
    assert record.sbam_enabled is True


def test_amr_ratios_per_image():
    tokens = _tokens(B=6)
    masker = _masker(amr=dict(ratio_var=0.1, delta=0.2, mode='sample'))
    masking = masker(tokens)
    salience = masker.last_masking.salience
    ratios = adaptive_mask_ratio(salience, 0.75, 0.1, 0.2)
    assert torch.equal(masker.last_masking.ratio, ratios)
    expected = torch.floor(64 * (1 - ratios.double())).long()
    assert torch.equal(masking.num_visible, expected)
    assert torch.equal(masking.mask.sum(1).long(), 64 - expected)


def test_sbam_disabled_masks_at_random_and_still_records_salience():
    tokens = _tokens()
    masker = _masker(amr=dict(ratio_var=0.1))
    masker.sbam_enabled = False
    torch.manual_seed(5)
    masking = masker(tokens)
    torch.manual_seed(5)
    expected = random_masking(torch.zeros(4, 64), 0.75)
    assert torch.equal(masking.mask, expected.mask)  # fixed ratio, no AMR
    record = masker.last_masking
    assert record.sbam_enabled is False
    assert record.salience.max() == 1.0  # computed for the statistics


def test_ready_salience_needs_no_tokens():
    """A salience from elsewhere (e.g. a teacher) is used as given."""
    salience = torch.rand(3, 49, generator=torch.Generator().manual_seed(1))
    masker = _masker(noise_scale=0.0)
    masking = masker(salience=salience)
    top = salience.topk(int(49 * 0.75) + 1, dim=1).indices  # 37 masked
    assert torch.equal(masking.mask.sum(1), torch.full((3, ), 37.))
    assert bool(masking.mask.gather(1, top).all())
    assert masker.last_masking.salience is not None
    with pytest.raises(ValueError, match='tokens or salience'):
        masker()


def test_attention_source_needs_layers(build_backbone,
                                       ref_attention_salience):
    bb = build_backbone()
    masker = _masker(salience_source='attention', salience_layer=1)
    tokens = bb.patch_tokens(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match='layers'):
        masker(tokens)
    got = masker.salience(tokens, layers=bb.layers)
    ref = ref_attention_salience(tokens, bb.layers, 1)
    assert np.allclose(got.numpy(), ref.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r'salience_layer must be in \[0, 1\]'):
        masker_bad = _masker(salience_source='attention', salience_layer=2)
        masker_bad.check_layers(len(bb.layers))


class _Collect(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_first_batch_report_once_per_mode():
    """One report per mode, in training only."""
    logger = MMLogger.get_current_instance()
    masker = _masker().train()
    handler = _Collect()
    logger.addHandler(handler)
    try:
        masker(_tokens())
        masker(_tokens())
        masker.sbam_enabled = False
        masker(_tokens())
        masker.eval()
        masker.sbam_enabled = True
        masker(_tokens())
    finally:
        logger.removeHandler(handler)
    reports = [m for m in handler.messages if 'SBAM first batch' in m]
    assert len(reports) == 2
    assert 'SalienceMaskGenerator' in reports[0]
    assert 'RandomMaskGenerator' in reports[1]


# ------------------------------------------------- composed in SBAMViT
def test_sbamvit_shorthands_and_masker_config_are_the_same(backbone_cfg):
    a = MODELS.build(backbone_cfg(noise_scale=0.2, temperature=4.0,
                                  amr=dict(ratio_var=0.05)))
    b = MODELS.build(backbone_cfg(masker=dict(
        type='SalienceMasker', noise_scale=0.2, temperature=4.0,
        amr=dict(ratio_var=0.05))))
    for bb in (a, b):
        assert isinstance(bb, SBAMViT)
        assert isinstance(bb.masker, SalienceMasker)
        assert bb.masker.mask_ratio == 0.75
    assert repr(a.masker) == repr(b.masker)
    x = torch.randn(3, 1, 32, 32)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(0)
    out_a = a(x)
    torch.manual_seed(0)
    out_b = b(x)
    for u, v in zip(out_a, out_b):
        assert torch.equal(u, v)


@pytest.mark.parametrize('kwargs,words', [
    (dict(masker=dict(type='SalienceMasker'), noise_scale=0.1),
     'not both'),
    (dict(masker=dict(type='SalienceMasker', mask_ratio=0.5)),
     'mask_ratio'),
])
def test_sbamvit_masker_conflicts_are_refused(backbone_cfg, kwargs, words):
    with pytest.raises(ValueError, match=words):
        MODELS.build(backbone_cfg(**kwargs))


def test_sbamvit_state_dict_has_no_masker_keys(build_backbone):
    sbam = build_backbone('SBAMViT', amr=dict(ratio_var=0.1))
    stock = build_backbone('MAEViT')
    assert set(sbam.state_dict()) == set(stock.state_dict())
    assert not any('masker' in k for k in sbam.state_dict())
