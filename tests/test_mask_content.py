"""tools/benchmark/mask_content.py: the garment/background measures on
hand-made inputs, and one run on real Fashion-MNIST test images."""
import os.path as osp

import pytest
import torch
from script_loader import load_tool

FMNIST = '/usr/share/datasets/fashion-mnist'


mc = load_tool('tools/benchmark/mask_content.py')


def test_foreground_patches_follow_raw_intensity():
    raw = torch.zeros(1, 1, 8, 8)
    raw[0, 0, :4, :4] = 200.0  # top-left 4x4 patch bright
    raw[0, 0, 4:, 4:] = 5.0  # bottom-right dim, below the threshold
    images = (raw - mc.FMNIST_MEAN) / mc.FMNIST_STD
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


@pytest.mark.skipif(not osp.isdir(FMNIST),
                    reason='Debian dataset-fashion-mnist not installed '
                    '(tools/install.sh installs it)')
def test_real_images_salience_towards_garment_at_high_temperature(capsys):
    """On real images random masking hides garment in proportion to its
    area, and a temperature that spreads the salience (τ = 64 = D) makes
    SBM hide more garment than random masking."""
    rows = mc.main(['--num-images', '64', '--temperatures', '64'])
    row = rows[0]
    masks = row['maskings']
    assert 0.3 < row['fg_tokens'] < 0.9
    assert masks['random']['masked_fg'] == pytest.approx(row['fg_tokens'],
                                                         abs=0.05)
    assert row['auc'] > 0.6
    assert masks['sbm']['fg_hidden'] > masks['random']['fg_hidden']
    assert '| init | embedding | 64 | ' in capsys.readouterr().out
