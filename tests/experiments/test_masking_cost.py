"""mmsbam.experiments.masking_cost (tools/benchmarks/benchmark_masking.py's
machinery): statistics on hand-made numbers, and the rounds and the report
on four tiny MAE variants sharing weights."""
import argparse

import pytest
import torch

from mmsbam.experiments import masking_cost as mcost


def test_quantiles_and_variant_ratios():
    assert mcost.quantiles([2.0]) == (2.0, 2.0, 2.0)
    assert mcost.quantiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    times = {'MAE': [1.0, 2.0, 4.0], 'SBM': [1.5, 2.0, 4.0],
             'AMR-sample': [2.0, 4.0, 8.0], 'AMR-batch': [1.0, 2.0, 4.0],
             'AMR-sample-padded': [1.0, 2.2, 4.0]}
    peaks = {n: [(10, 5), (None, None)] for n in times}
    stats = mcost.variant_statistics(times, peaks)
    assert list(stats) == list(mcost.VARIANTS)
    assert stats['AMR-sample']['ratio_to_mae'] == pytest.approx(2.0)
    assert stats['SBM']['ratio_to_mae'] == pytest.approx(1.0)
    # per-round ratios 1.5, 1, 1 -> median 1
    assert stats['SBM']['paired_ratio_median'] == pytest.approx(1.0)
    # per-round ratios to AMR-batch 1, 1.1, 1 -> median 1
    assert stats['AMR-sample-padded']['paired_ratio_to_amr_batch'] == \
        pytest.approx(1.0)
    assert stats['AMR-sample']['paired_ratio_to_amr_batch'] == \
        pytest.approx(2.0)
    assert stats['MAE']['peak_mem_bytes'] == 10
    assert stats['MAE']['step_peak_above_resident_bytes'] == 5
    assert mcost.verdict(stats, iters=3)[0] == \
        'INCONCLUSIVE (would be PASS)'


def test_amr_statistics_padding_waste():
    records = [(torch.tensor([2, 4]), torch.tensor([0.8, 0.6])),
               (torch.tensor([3, 3]), torch.tensor([0.7, 0.7]))]
    s = mcost.amr_statistics(records, stock_keep=3)
    assert s['steps'] == 2
    assert (s['ratio_min'], s['ratio_max']) == pytest.approx((0.6, 0.8))
    assert s['mean_within_batch_ratio_range'] == pytest.approx(0.1)
    assert (s['num_visible_min'], s['num_visible_max']) == (2, 4)
    # step 1: 6 visible in 2 x 4 slots; step 2: no padding
    assert s['padding_waste_max'] == pytest.approx(0.25)
    assert s['padding_waste_mean'] == pytest.approx(0.125)
    assert s['padding_waste_pooled'] == pytest.approx(1 - 12 / 14)
    assert s['k_max_mean'] == pytest.approx(3.5)
    assert s['grouped_padding_pooled'] == s['padding_waste_pooled']  # 1
    # two groups: step 1 has no padding left (one image per count)
    s2 = mcost.amr_statistics(records, stock_keep=3, encoder_groups=2)
    assert s2['grouped_padding_pooled'] == pytest.approx(0.0)
    assert s['encoder_slots_vs_stock'] == pytest.approx(3.5 / 3)


def test_batches_are_seeded_and_normalized():
    photos = [torch.rand(3, 40, 50), torch.rand(3, 30, 30)]
    a = mcost.make_batch(photos, 3, 16, torch.Generator().manual_seed(1))
    b = mcost.make_batch(photos, 3, 16, torch.Generator().manual_seed(1))
    assert a.shape == (3, 3, 16, 16) and torch.equal(a, b)
    noise = mcost.make_batch([], 2, 16, torch.Generator().manual_seed(1))
    assert noise.shape == (2, 3, 16, 16)
    # (0 - 0.485) / 0.229 is the lowest a red pixel can be
    assert float(a[:, 0].min()) >= (0 - 0.485) / 0.229 - 1e-5


@pytest.fixture
def tiny_variants(build_mae):
    """The variants of the benchmark on a tiny MAE (L = 64)."""
    models = {
        'MAE': build_mae(in_channels=3, type_='MAEViT'),
        'SBM': build_mae(in_channels=3),
        'AMR-sample': build_mae(in_channels=3, amr=dict(mode='sample')),
        'AMR-batch': build_mae(in_channels=3, amr=dict(mode='batch')),
        'AMR-sample-padded': build_mae(in_channels=3, encoder_groups=1,
                                       amr=dict(mode='sample')),
    }
    state = models['MAE'].state_dict()
    for model in models.values():
        model.load_state_dict(state, strict=True)
        model.train()
    return models


def test_rounds_and_report(tiny_variants, capsys):
    device = torch.device('cpu')
    trainers = {n: mcost.Trainer(m, 1e-6, False, device)
                for n, m in tiny_variants.items()}
    gen = torch.Generator().manual_seed(0)
    measured = mcost.run_rounds(
        trainers, mcost.cost_alone_ops(tiny_variants),
        lambda: torch.randn(2, 3, 32, 32, generator=gen), warmup=1, iters=2,
        memory=mcost.PeakMemory(device))
    assert all(len(t) == 2 for t in measured.times.values())
    assert all(len(t) == 2 for t in measured.cost_alone.values())
    for name in mcost.AMR_VARIANTS:
        records = measured.amr_records[name]
        assert len(records) == 2  # the timed train steps only
        for num_visible, ratio in records:
            assert num_visible.shape == ratio.shape == (2, )
            expected = (64 * (1 - ratio)).round().long()
            assert (num_visible - expected).abs().max() <= 1
    stock = tiny_variants['MAE'].backbone
    summary = mcost.summarize(measured, stock.num_patches, stock.mask_ratio)
    assert summary['stock_len_keep'] == 16
    args = argparse.Namespace(arch='b', img_size=32, batch_size=2,
                              amp=False, iters=2, warmup=1)
    capsys.readouterr()
    result = mcost.print_report(args, device, summary, 'n/a',
                                'uniform noise', 'cmd')
    out = capsys.readouterr().out
    assert result.startswith('INCONCLUSIVE')
    assert '(L=64, mask_ratio=0.75), batch 2, amp off' in out
    for label in mcost.cost_alone_ops(tiny_variants):
        assert label in out
    assert 'AMR-sample: ratio per image' in out
    assert 'padding of one batch 1 - sum(num_visible)/(B*K_max)' in out
    assert 'per-image / batch-mode AMR step (median of paired rounds): ' \
        'AMR-sample' in out
    assert 'salience   : temperature 1 (the paper)' in out
    assert 'note: fewer than 5 timed steps per variant, no verdict' in out
