"""Adaptive masking ratio (SBAM.md section 3)."""
import pytest
import torch

from mmpretrain.registry import MODELS
from mmsbam import AdaptiveMaskRatio, adaptive_mask_ratio
from mmsbam.masking import amr as amr_module


def _salience_with_counts(counts, L=10, high=0.9, low=0.1):
    """Rows with ``counts[b]`` tokens at ``high`` and the rest at ``low``."""
    sal = torch.full((len(counts), L), low)
    for b, c in enumerate(counts):
        sal[b, :c] = high
    return sal


def test_formula_hand_computed():
    L = 10
    sal = _salience_with_counts([0, 3, 10, 7], L)
    sal[3, 7:] = 0.5  # equal to delta: strict '>' does not count them
    r = adaptive_mask_ratio(sal, base_ratio=0.75, ratio_var=0.1, delta=0.5)
    # y = [0, .3, 1, .7]; r = 0.65 + 0.2 y
    expected = torch.tensor([0.65, 0.71, 0.85, 0.79])
    assert r.shape == (4, )
    assert r.dtype == torch.float32
    assert torch.allclose(r, expected, atol=1e-6)


def test_threshold_is_strict_and_delta_used():
    sal = torch.tensor([[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]])
    # delta 0.4: tokens 0.6, 0.8, 1.0 -> y = 1/2; delta 0.0 -> 5/6;
    # delta 1.0 -> 0
    for delta, y in ((0.4, 3 / 6), (0.0, 5 / 6), (1.0, 0.0), (0.5, 3 / 6)):
        r = adaptive_mask_ratio(sal, 0.5, 0.2, delta)
        assert r.item() == pytest.approx(0.3 + 0.4 * y, abs=1e-6)


def test_bounds_and_extremes():
    base, var = 0.6, 0.25
    g = torch.Generator().manual_seed(0)
    sal = torch.rand(500, 49, generator=g)**torch.linspace(
        0.1, 10, 500).unsqueeze(1)  # wide range of salient fractions
    r = adaptive_mask_ratio(sal, base, var, 0.5)
    assert (r >= base - var - 1e-6).all()
    assert (r <= base + var + 1e-6).all()
    # extremes reached: nothing salient / everything salient
    lo = adaptive_mask_ratio(torch.zeros(1, 49), base, var, 0.5)
    hi = adaptive_mask_ratio(torch.ones(1, 49), base, var, 0.5)
    assert lo.item() == pytest.approx(base - var, abs=1e-6)
    assert hi.item() == pytest.approx(base + var, abs=1e-6)


def test_monotonic_in_salient_fraction():
    L = 20
    sal = _salience_with_counts(list(range(L + 1)), L)
    r = adaptive_mask_ratio(sal, 0.7, 0.15, 0.5)
    assert (r[1:] > r[:-1]).all()  # strictly increasing when var > 0
    steps = r[1:] - r[:-1]
    assert torch.allclose(steps, torch.full_like(steps, 2 * 0.15 / L),
                          atol=1e-6)
    flat = adaptive_mask_ratio(sal, 0.7, 0.0, 0.5)
    assert torch.allclose(flat, torch.full_like(flat, 0.7))


def test_registered_sample_mode():
    amr = MODELS.build(
        dict(type='AdaptiveMaskRatio', base_ratio=0.75, ratio_var=0.1,
             delta=0.5))
    assert isinstance(amr, AdaptiveMaskRatio)
    assert amr.mode == 'sample'
    sal = _salience_with_counts([0, 5, 10])
    assert torch.allclose(amr(sal), torch.tensor([0.65, 0.75, 0.85]))


def test_batch_mode_single_ratio_equal_to_mean():
    sal = _salience_with_counts([0, 2, 9, 10])
    sample = AdaptiveMaskRatio(0.75, 0.1, 0.5, mode='sample')(sal)
    batch = MODELS.build(
        dict(type='AdaptiveMaskRatio', base_ratio=0.75, ratio_var=0.1,
             delta=0.5, mode='batch'))(sal)
    assert batch.shape == (4, )
    assert torch.all(batch == batch[0])
    # mean of y = (0 + .2 + .9 + 1) / 4 = .525 -> r = .65 + .2 * .525
    assert batch[0].item() == pytest.approx(0.755, abs=1e-6)
    assert batch[0].item() == pytest.approx(sample.mean().item(), abs=1e-6)
    assert len(set(sample.tolist())) == 4  # sample mode really varies


def test_defaults_documented():
    amr = AdaptiveMaskRatio(0.75)
    assert 0 < amr.ratio_var < 0.25 and 0 <= amr.delta <= 1
    assert amr.mode == 'sample'


@pytest.mark.parametrize('kwargs, name', [
    (dict(base_ratio=0.9, ratio_var=0.2), 'ratio_var'),
    (dict(base_ratio=0.2, ratio_var=0.2), 'ratio_var'),
    (dict(base_ratio=0.75, ratio_var=-0.1), 'ratio_var'),
    (dict(base_ratio=0.75, delta=-0.1), 'delta'),
    (dict(base_ratio=0.75, delta=1.5), 'delta'),
    (dict(base_ratio=0.75, mode='image'), 'mode'),
])
def test_bad_arguments_raise_at_build(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MODELS.build(dict(type='AdaptiveMaskRatio', **kwargs))
    if 'mode' not in kwargs:
        args = dict(ratio_var=0.1, delta=0.5)
        args.update(kwargs)
        with pytest.raises(ValueError, match=name):
            adaptive_mask_ratio(torch.rand(2, 8), **args)


@pytest.mark.parametrize('bad', [0, 1, -0.1, 1.5])
def test_bad_base_ratio_raises(bad):
    with pytest.raises(ValueError, match='ratio'):
        MODELS.build(dict(type='AdaptiveMaskRatio', base_ratio=bad))
    with pytest.raises(ValueError, match='ratio'):
        adaptive_mask_ratio(torch.rand(2, 8), bad, 0.0, 0.5)


def test_bad_base_ratio_message_names_base_ratio():
    with pytest.raises(ValueError, match='base_ratio'):
        MODELS.build(dict(type='AdaptiveMaskRatio', base_ratio=1.5))


# --------------------------------------------------------------------------
# batch mode synchronised over processes (amr=dict(mode='batch', sync=True))
# --------------------------------------------------------------------------


def _simulate_second_rank(monkeypatch, other_fractions):
    """Two processes: this one, and one whose images have the salient
    fractions ``other_fractions``; the all-reduce adds its sums."""
    other = torch.tensor(other_fractions, dtype=torch.float64)
    calls = []

    def all_reduce(data, op='sum', group=None):
        assert op == 'sum'
        calls.append(data.clone())
        data.add_(torch.stack([other.sum(), other.new_tensor(len(other))]))

    monkeypatch.setattr(amr_module, 'get_world_size', lambda group=None: 2)
    monkeypatch.setattr(amr_module, 'all_reduce', all_reduce)
    return calls


def test_synced_batch_ratio_is_that_of_the_global_batch_mean(monkeypatch):
    calls = _simulate_second_rank(monkeypatch, [1.0, 1.0, 0.8])
    sal = _salience_with_counts([0, 2, 9, 10])  # y = 0, .2, .9, 1
    synced = AdaptiveMaskRatio(0.75, 0.1, 0.5, mode='batch', sync=True)(sal)
    # global mean of y = (2.1 + 2.8) / 7 = .7 -> r = .65 + .2 * .7 = .79
    assert synced.shape == (4, ) and synced.dtype == torch.float32
    assert torch.all(synced == synced[0])
    assert synced[0].item() == pytest.approx(0.79, abs=1e-6)
    # one all-reduce of this process's sum of y and its image count
    assert len(calls) == 1
    torch.testing.assert_close(calls[0], torch.tensor(
        [2.1, 4.0], dtype=torch.float64))
    # without sync the same processes keep their own batch's ratio
    local = AdaptiveMaskRatio(0.75, 0.1, 0.5, mode='batch')(sal)
    assert local[0].item() == pytest.approx(0.755, abs=1e-6)
    assert len(calls) == 1


def test_synced_batch_ratio_on_one_process_is_the_batch_ratio():
    """Not distributed: no all-reduce, the same bits as ``mode='batch'``."""
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        sal = torch.rand(int(torch.randint(1, 40, (1, ), generator=g)), 49,
                         generator=g)
        synced = AdaptiveMaskRatio(0.7, 0.125, 0.3, 'batch', sync=True)(sal)
        local = AdaptiveMaskRatio(0.7, 0.125, 0.3, 'batch')(sal)
        assert torch.equal(synced, local)


def test_masker_passes_sync_through(monkeypatch):
    _simulate_second_rank(monkeypatch, [1.0, 1.0, 0.8])
    masker = MODELS.build(dict(
        type='SalienceMasker', mask_ratio=0.75,
        amr=dict(ratio_var=0.1, delta=0.5, mode='batch', sync=True)))
    assert masker.amr.sync is True
    masker(salience=_salience_with_counts([0, 2, 9, 10]))
    ratio = masker.last_masking.ratio
    assert ratio.tolist() == pytest.approx([0.79] * 4, abs=1e-6)
    assert 'sync=True' in repr(masker)


@pytest.mark.parametrize('amr, match', [
    (dict(mode='sample', sync=True), r"amr.sync=True needs mode='batch'"),
    (dict(mode='batch', sync=1), r'amr.sync must be True or False'),
    (dict(mode='batch', sync='yes'), r'amr.sync must be True or False'),
])
def test_bad_sync_is_refused_at_build(amr, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='AdaptiveMaskRatio', base_ratio=0.75, **amr))
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='SalienceMasker', mask_ratio=0.75, amr=amr))


@pytest.mark.slow
def test_two_processes_mask_at_one_ratio_only_with_sync(tmp_path):
    """A real 2-process gloo group (``tests/dist_amr_probe.py``), different
    images per rank: without sync each rank masks at its own batch's ratio,
    with sync both at the ratio of the global batch mean of ``y_b``."""
    import torch.distributed.run as torchrun
    from conftest import _run_tool
    from dist_probe import _env
    _run_tool(torchrun.__file__, '--standalone', '--nproc_per_node=2',
              'tests/dist_amr_probe.py', tmp_path, env=_env(), timeout=300)
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True)
             for r in range(2)]
    local, synced = ([rank[sync] for rank in ranks] for sync in (False, True))
    fractions = [(r['salience'].double() > 0.3).double().mean(1)
                 for r in local]
    # without sync: each rank's own batch mean, and they differ
    for rank, y in zip(local, fractions):
        expected = 0.7 - 0.125 + 0.25 * y.mean().item()
        assert rank['ratio'].tolist() == pytest.approx([expected] * 6,
                                                       abs=1e-6)
    assert local[0]['ratio'][0].item() != pytest.approx(
        local[1]['ratio'][0].item(), abs=0.01)
    # with sync: one ratio, bit for bit, from the mean over both batches
    assert torch.equal(synced[0]['ratio'], synced[1]['ratio'])
    assert torch.equal(synced[0]['masked'], synced[1]['masked'])
    expected = 0.7 - 0.125 + 0.25 * torch.cat(fractions).mean().item()
    assert synced[0]['ratio'].tolist() == pytest.approx([expected] * 6,
                                                        abs=1e-6)
    # the same salience either way: only the ratio changed
    for a, b in zip(local, synced):
        assert torch.equal(a['salience'], b['salience'])


@pytest.mark.slow
def test_two_training_processes_share_one_synced_ratio(tmp_path):
    """``tools/dist_train.sh`` with 2 processes (Runner, DDP, stock MAE
    loss), ``amr=dict(mode='batch', sync=True)``: in every iteration both
    ranks mask at the ratio of the mean salient fraction of both batches."""
    from dist_probe import PRETRAIN, train
    config = tmp_path / 'amr_sync.py'
    config.write_text(
        f'_base_ = {PRETRAIN!r}\n'
        "custom_imports = dict(imports=['mmsbam', 'dist_amr_probe'], "
        'allow_failed_imports=False)\n'
        "custom_hooks = [dict(type='AMRProbeHook')]\n"
        # temperature 64 spreads the Fashion-MNIST salience (docs/method.md)
        'model = dict(backbone=dict(temperature=64.0, amr=dict('
        "ratio_var=0.1, delta=0.3, mode='batch', sync=True)))\n")
    train(str(config), tmp_path / 'run', 'train_cfg.max_epochs=2', nproc=2,
          port=29573)
    for it in (1, 2):
        ranks = [torch.load(tmp_path / 'run' / 'amr_probe' /
                            f'rank{r}_iter{it}.pt', weights_only=True)
                 for r in range(2)]
        y = [(r['salience'].double() > 0.3).double().mean(1) for r in ranks]
        assert abs(y[0].mean() - y[1].mean()) > 1e-3  # the batches differ
        expected = 0.75 - 0.1 + 0.2 * torch.cat(y).mean().item()
        assert torch.equal(ranks[0]['ratio'], ranks[1]['ratio'])
        assert ranks[0]['ratio'].tolist() == pytest.approx(
            [expected] * 16, abs=1e-6)
        counts = torch.cat([r['mask'].sum(1) for r in ranks])
        assert torch.all(counts == counts[0])
