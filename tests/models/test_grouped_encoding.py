"""Per-image AMR encoded in sub-batches of similar visible counts: the
grouping minimises padded slots, and losses and gradients equal those of
one padded batch (the path it replaces, ``encoder_groups=1``)."""
import itertools

import pytest
import torch

from mmsbam.models.grouped_encoding import encode_in_groups, visible_groups

AMR = dict(ratio_var=0.125, delta=0.3)


def brute_force_slots(counts, max_groups):
    """Least ``sum(images * group max)`` over every split of the sorted
    counts into at most ``max_groups`` contiguous groups."""
    s = sorted(counts)
    best = None
    for g in range(1, min(max_groups, len(s)) + 1):
        for cuts in itertools.combinations(range(1, len(s)), g - 1):
            bounds = (0, ) + cuts + (len(s), )
            cost = sum((b - a) * s[b - 1] for a, b in zip(bounds, bounds[1:]))
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize('seed', range(8))
@pytest.mark.parametrize('max_groups', [1, 2, 3, 4])
def test_groups_partition_the_batch_with_least_padding(seed, max_groups):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(20, 30, (9, ), generator=g)
    groups = visible_groups(counts, max_groups)
    assert len(groups) <= max_groups
    index = torch.cat([grp.index for grp in groups])
    assert sorted(index.tolist()) == list(range(9))
    slots = 0
    for grp in groups:
        assert grp.max_visible == int(counts[grp.index].max())
        assert grp.padded == bool((counts[grp.index] < grp.max_visible).any())
        slots += len(grp.index) * grp.max_visible
    assert slots == brute_force_slots(counts.tolist(), max_groups)


def test_equal_counts_make_one_unpadded_group():
    groups = visible_groups(torch.full((5, ), 7), 4)
    assert len(groups) == 1 and not groups[0].padded


@pytest.mark.parametrize('bad', [0, -1, 2.0, True])
def test_bad_max_groups(bad):
    with pytest.raises(ValueError, match='max_groups'):
        visible_groups(torch.tensor([1, 2]), bad)


def test_encode_in_groups_returns_batch_order():
    x = torch.randn(5, 4, 3)
    counts = torch.tensor([4, 1, 3, 4, 2])

    def encode(tokens, slots):  # prepend the count of real tokens
        real = tokens.shape[1] if slots is None else slots.sum(1)
        head = torch.as_tensor(real, dtype=tokens.dtype).expand(
            tokens.shape[0]).view(-1, 1, 1).expand(-1, 1, 3)
        return torch.cat([head, tokens], 1)

    out = encode_in_groups(x, counts, 3, encode)
    assert out.shape == (5, 5, 3)
    assert out[:, 0, 0].tolist() == counts.float().tolist()
    for b, k in enumerate(counts.tolist()):
        assert torch.equal(out[b, 1:1 + k], x[b, :k])


@pytest.mark.parametrize('groups', [2, 4, 64])
def test_loss_and_gradients_equal_one_padded_batch(build_mae, groups):
    """Same masks (same seed), same loss and gradients within float
    tolerance as ``encoder_groups=1``; the masks really vary in count."""
    x = torch.randn(12, 1, 32, 32) * torch.linspace(0.1, 3, 12).view(
        -1, 1, 1, 1)
    results = []
    for g in (1, groups):
        model = build_mae(mask_ratio=0.7, amr=AMR, encoder_groups=g,
                          temperature=32.0)
        model.train()
        torch.manual_seed(5)
        latent, mask, ids = model.backbone(x)
        loss = model.head.loss(model.neck(latent, ids), x, mask)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()
                 if p.grad is not None}
        results.append((loss.detach(), mask, grads))
    (loss1, mask1, g1), (loss2, mask2, g2) = results
    assert len(set(mask1.sum(1).tolist())) > 2  # per-image counts differ
    assert torch.equal(mask1, mask2)
    assert torch.allclose(loss1, loss2, rtol=1e-5, atol=1e-6)
    assert g1.keys() == g2.keys()
    for name in g1:
        assert torch.allclose(g1[name], g2[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize('bad', [0, 1.5, True])
def test_bad_encoder_groups_is_named(build_backbone, bad):
    with pytest.raises(ValueError, match='encoder_groups'):
        build_backbone(encoder_groups=bad)
