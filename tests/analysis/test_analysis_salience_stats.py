"""mmsbam.analysis.salience_stats and .maskings: salience per source with a
SalienceMasker, AMR statistics, seeded maskings."""
import pytest
import torch

from mmsbam.analysis import salience_stats as ss
from mmsbam.analysis.maskings import seeded_maskings
from mmsbam.masking import (random_masking, salience_guided_masking,
                            token_salience)


def test_compute_salience_per_source_leaves_the_backbone_alone(
        build_backbone, ref_attention_salience):
    backbone = build_backbone(temperature=2.0)
    x = torch.randn(5, 1, 32, 32)
    tokens = backbone.patch_tokens(x).detach()
    emb = ss.compute_salience(backbone, x,
                              ss.salience_masker(backbone, 'embedding', 8.0),
                              batch_size=2)
    torch.testing.assert_close(emb, token_salience(tokens, 8.0))
    att = ss.compute_salience(
        backbone, x, ss.salience_masker(backbone, 'attention', 1.0, 1))
    torch.testing.assert_close(
        att.double(), ref_attention_salience(tokens, backbone.layers, 1),
        atol=1e-5, rtol=1e-4)
    # the backbone's own masker is untouched
    assert backbone.masker.salience_source == 'embedding'
    assert backbone.masker.temperature == 2.0
    with pytest.raises(ValueError, match='salience_layer'):
        ss.salience_masker(backbone, 'attention', 1.0, 2)  # 2 layers


def test_summarise_recommend_and_padding_cost():
    # half the images have 3 of 4 salient tokens, half 1 of 4
    sal = torch.tensor([[0.9, 0.8, 0.7, 0.0]] * 4 + [[0.9, 0.0, 0.1, 0.0]] * 4)
    stats = ss.summarise(sal, [0.5], [0.1], 0.75, batch_size=4, seed=0)
    y = stats['deltas']['0.5']['y']
    assert y['mean'] == pytest.approx(0.5) and y['std'] == pytest.approx(0.25)
    r = stats['deltas']['0.5']['ratio_vars']['0.1']
    assert r['mean'] == pytest.approx(0.75)
    assert r['pad'] >= 0
    rec = ss.recommend(stats, mean_tol=0.1)
    assert rec == dict(delta=0.5, y_mean=pytest.approx(0.5),
                       y_std=pytest.approx(0.25), qualified=True)
    joint = ss.recommend_joint({'a': stats, 'b': stats}, [0.5], 0.1)
    assert joint['delta'] == 0.5 and joint['pairs'] == ['a', 'b']
    same = torch.full((8, ), 0.75)
    assert ss.padding_cost(same, 16, 4, 0) == 0.0


def test_build_backbone_of_a_setting_and_its_checkpoint(tmp_path):
    backbone, info = ss.build_backbone('fmnist', seed=0)
    assert info is None and backbone.patch_tokens(
        torch.zeros(1, 1, 28, 28)).shape == (1, 49, 64)
    path = str(tmp_path / 'b.pth')
    torch.save({'state_dict': backbone.state_dict()}, path)
    again, info = ss.build_backbone('fmnist', seed=1, checkpoint=path)
    assert info['loaded'] == info['total']
    assert ss.loaded_message(path, info) == \
        f'loaded {path}: {info["total"]}/{info["total"]} backbone tensors'


def test_seeded_maskings_share_the_noise():
    sal = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    ratios = torch.tensor([0.5, 0.75, 0.7])
    out = seeded_maskings(sal, 0.75, ratios, 0.5, seed=7)
    assert list(out) == ['random', 'sbm', 'sbam']

    def gen():
        return torch.Generator().manual_seed(7)

    torch.testing.assert_close(out['random'].mask,
                               random_masking(sal, 0.75, gen()).mask)
    torch.testing.assert_close(
        out['sbm'].mask, salience_guided_masking(sal, 0.75, 0.5, gen()).mask)
    torch.testing.assert_close(
        out['sbam'].mask,
        salience_guided_masking(sal, ratios, 0.5, gen()).mask)
