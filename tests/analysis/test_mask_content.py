"""mmsbam.analysis.mask_content: the garment/background measures on
hand-made inputs, and tools/analysis_tools/mask_content.py on real
Fashion-MNIST test images."""
import json
import os.path as osp

import pytest
import torch

from mmsbam.analysis import mask_content as mc
from mmsbam.analysis.images import FMNIST_MEAN, FMNIST_STD

FMNIST = '/usr/share/datasets/fashion-mnist'


def test_foreground_patches_follow_raw_intensity():
    raw = torch.zeros(1, 1, 8, 8)
    raw[0, 0, :4, :4] = 200.0  # top-left 4x4 patch bright
    raw[0, 0, 4:, 4:] = 5.0  # bottom-right dim, below the threshold
    images = (raw - FMNIST_MEAN) / FMNIST_STD
    fg = mc.foreground_patches(images, 4, threshold=13.0)
    assert fg.tolist() == [[True, False, False, False]]


def test_salience_auc_counts_garment_over_background_pairs():
    fg = torch.tensor([[True, True, False, False],
                       [True, False, False, False],
                       [True, True, True, True]])
    sal = torch.tensor([[0.9, 0.8, 0.1, 0.2],   # garment always higher: 1
                        [0.1, 0.5, 0.1, 0.9],   # 1 tie, 2 losses: 1/6
                        [0.1, 0.2, 0.3, 0.4]])  # no background: NaN
    auc = mc.salience_auc(sal, fg)
    assert auc[0] == pytest.approx(1.0)
    assert auc[1] == pytest.approx(0.5 / 3)
    assert torch.isnan(auc[2])


def test_masked_content_shares():
    fg = torch.tensor([[True, True, False, False]])
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    out = mc.masked_content(mask, fg)
    assert out['masked_fg'] == pytest.approx(1 / 3)  # 1 of 3 masked
    assert out['fg_hidden'] == pytest.approx(1 / 2)  # 1 of 2 garment


def test_row_peak_uses_the_backbone_patch_tokens(build_backbone):
    """The row peak of softmax(X Xᵀ / τ) of SBAMViT's patch tokens, in
    batches; a huge temperature makes every row uniform (peak 1 / L)."""
    backbone = build_backbone()
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        tokens = backbone.patch_tokens(x)
    L = tokens.shape[1]
    expected = tokens @ tokens.transpose(1, 2)
    expected = expected.softmax(-1).amax(-1).mean()
    assert mc.row_peak(backbone, x, 1.0, batch_size=2) == pytest.approx(
        float(expected), rel=1e-5)
    assert mc.row_peak(backbone, x, 1e6) == pytest.approx(1 / L, rel=1e-3)


def test_measure_same_noise_and_amr_ratios():
    g = torch.Generator().manual_seed(0)
    salience = torch.rand(8, 16, generator=g)
    fg = salience > 0.5
    out = mc.measure(salience, fg, ratio=0.75, noise_scale=0.0,
                     ratio_var=0.1, delta=0.2, seed=3)
    assert out['fg_tokens'] == pytest.approx(float(fg.float().mean()))
    assert out['auc'] == pytest.approx(1.0)  # salience defines fg
    # noise 0: SBM masks the most salient tokens, i.e. garment first
    assert out['maskings']['sbm']['fg_hidden'] > \
        out['maskings']['random']['fg_hidden']
    assert 0.65 <= out['amr_ratio_mean'] <= 0.85
    assert set(out['maskings']) == {'random', 'sbm', 'sbam'}


@pytest.mark.skipif(not osp.isdir(FMNIST),
                    reason='Debian dataset-fashion-mnist not installed '
                    '(tools/install.sh installs it)')
def test_real_images_salience_towards_garment_at_high_temperature(
        run_tool, tmp_path):
    """On real images random masking hides garment in proportion to its
    area, and a temperature that spreads the salience (τ = 64 = D) makes
    SBM hide more garment than random masking."""
    out = tmp_path / 'rows.json'
    proc = run_tool('tools/analysis_tools/mask_content.py', '--num-images',
                    64, '--temperatures', 64, '--out', out)
    with open(out) as f:
        row = json.load(f)['rows'][0]
    masks = row['maskings']
    assert 0.3 < row['fg_tokens'] < 0.9
    assert masks['random']['masked_fg'] == pytest.approx(row['fg_tokens'],
                                                         abs=0.05)
    assert row['auc'] > 0.6
    assert masks['sbm']['fg_hidden'] > masks['random']['fg_hidden']
    assert '| init | embedding | 64 | ' in proc.stdout
