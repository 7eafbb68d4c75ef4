"""The cost of SBAM over any stock method
(:func:`mmsbam.experiments.masking_cost.measure_method`), on the tiny MAE and
SimMIM rows of the method table: both models step, the SBAM one masks, the
stock one sees the pipeline's masks."""
import math
import os.path as osp

import pytest

from conftest import ROOT
from mmsbam.experiments.masking_cost import (format_method_table,
                                          measure_method, shrink_model_cfg,
                                          stock_model_cfg, stock_type)
from test_methods import METHODS

ROWS = {m.name: m for m in METHODS if m.name in ('mae', 'simmim')}


@pytest.fixture(scope='module')
def results():
    out = {}
    for name, row in ROWS.items():
        out[name] = measure_method(
            osp.join(ROOT, row.config), cfg_options=row.tiny, rounds=2,
            warmup=0, batch_size=4, log=lambda _: None)
    return out


def test_stock_types():
    assert stock_type('SBAMViT') == 'MAEViT'
    assert stock_type('SBAMSimMIMSwinTransformer') == 'SimMIMSwinTransformer'
    with pytest.raises(ValueError):
        stock_type('MAEViT')
    cfg = stock_model_cfg(dict(backbone=dict(
        type='SBAMBEiTPretrainViT', arch='b', mask_unit=2, masker={})))
    assert cfg == dict(backbone=dict(type='BEiTPretrainViT', arch='b'))
    cfg = stock_model_cfg(dict(type='SBAMCAE', backbone=dict(
        type='SBAMCAEPretrainViT'), neck=dict(type='SBAMCAENeck')))
    assert cfg == dict(type='CAE', backbone=dict(type='CAEPretrainViT'),
                       neck=dict(type='CAENeck'))


def test_shrink_rematches_widths():
    cfg = shrink_model_cfg(dict(
        backbone=dict(type='SimMIMSwinTransformer', arch='base'),
        neck=dict(type='SimMIMLinearDecoder', in_channels=1024)))
    assert cfg['backbone']['arch']['embed_dims'] == 48
    assert cfg['neck']['in_channels'] == 8 * 48


@pytest.mark.parametrize('name', sorted(ROWS))
def test_both_variants_ran(results, name):
    r = results[name]
    assert r['stock_type'] == ROWS[name].stock_type
    assert r['sbam_type'] == 'SBAM' + r['stock_type'] or \
        r['sbam_type'] == 'SBAMViT'
    assert all(len(r['times_s'][n]) == 2 for n in ('stock', 'sbam'))
    assert all(math.isfinite(r['ratio'][k]) and r['ratio'][k] > 0
               for k in ('median', 'p10', 'p90'))
    assert r['ratio']['p10'] <= r['ratio']['median'] <= r['ratio']['p90']
    assert r['sbam_maskers_recorded'] == 1  # the SBAM model masked
    assert r['stock_maskers'] == 0  # the stock model has no masker


def test_stock_sees_the_pipeline_masks(results):
    assert results['simmim']['mask_token']
    assert results['simmim']['stock_masks_are_pipeline'] is True
    assert not results['mae']['mask_token']
    assert results['mae']['stock_masks_are_pipeline'] is None


def test_table(results):
    table = format_method_table(
        list(results.values()) + [dict(method='x', error='boom')])
    assert table.count('\n') == 4
    assert 'SBAMSimMIMSwinTransformer' in table and 'failed: boom' in table
