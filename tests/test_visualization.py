"""Mask pictures: ``mmsbam.visualization`` and
``tools/visualization/visualize_masks.py``."""
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch

from mmsbam.visualization import denormalize, draw_masking_figure

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FMNIST_CONFIG = osp.join(ROOT, 'configs', 'fmnist',
                         'sbam_vit-tiny-p4_1xb256-5e_fmnist.py')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def test_denormalize_round_trip_rgb():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    mean, std = [10.0, 20.0, 30.0], [2.0, 4.0, 5.0]
    x = torch.from_numpy(pixels).float().permute(0, 3, 1, 2)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1)
    out = denormalize(x, mean, std)
    assert out.dtype == np.uint8 and out.shape == (2, 5, 6, 3)
    np.testing.assert_array_equal(out, pixels)


def test_denormalize_known_values_grey_and_clipping():
    # (v - 72.94) / 90.02 for v = 0, 100, 255, plus values outside 0..255
    x = torch.tensor([[[[-72.94 / 90.02, (100 - 72.94) / 90.02],
                        [(255 - 72.94) / 90.02, 5.0]]]])
    out = denormalize(x, [72.94], [90.02])
    assert out.shape == (1, 2, 2, 3)
    expected = np.array([[0, 100], [255, 255]], dtype=np.uint8)
    for c in range(3):  # one channel repeated to RGB
        np.testing.assert_array_equal(out[0, ..., c], expected)
    out = denormalize(torch.full((1, 1, 1, 1), -10.0), [0.0], [1.0])
    assert out.max() == 0  # clipped, not wrapped around
    with pytest.raises(ValueError, match='mean'):
        denormalize(torch.zeros(1, 3, 2, 2), [0.0, 0.0], [1.0])


def _inputs(n=2, size=32, side=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    salience = rng.random((n, side * side))
    return images, salience


def test_draw_masking_figure_size_and_masks_drawn():
    import matplotlib
    backend = matplotlib.get_backend()
    images, salience = _inputs()
    L = salience.shape[1]
    half = np.zeros((2, L))
    half[:, :L // 2] = 1
    masks = OrderedDict(random=(np.arange(L) % 2 == 0)[None].repeat(2, 0),
                        SBM=torch.from_numpy(half))
    pic = draw_masking_figure(images, torch.from_numpy(salience), masks,
                              ratios={'SBM': [0.5, 0.5]}, title='t')
    assert matplotlib.get_backend() == backend
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[2] == 3
    n_cols, n_rows, panel = 4, 2, 220  # 2.2 in at 100 dpi
    H, W = pic.shape[:2]
    assert 0.9 * n_cols * panel <= W <= 1.3 * n_cols * panel
    assert n_rows * panel <= H <= 1.6 * n_rows * panel + 200

    # another mask in one column changes that column's pixels
    other = OrderedDict(random=masks['random'], SBM=1 - half)
    pic2 = draw_masking_figure(images, salience, other,
                               ratios={'SBM': [0.5, 0.5]}, title='t')
    assert pic2.shape == pic.shape
    diff = np.any(pic != pic2, axis=-1)
    assert diff.sum() > 0.2 * 200 * 200
    cols = np.nonzero(diff.any(axis=0))[0]
    # only the last panel column (SBM) differs, not image/salience/random
    assert cols.min() > 2.95 * panel

    # a reconstruction adds a column; tiny images are upscaled
    pic3 = draw_masking_figure(images[:, :8, :8], salience, masks,
                               reconstructions=images[:, :8, :8])
    assert pic3.shape[1] > W + 150


def test_draw_masking_figure_rejects_bad_shapes():
    images, salience = _inputs()
    with pytest.raises(ValueError, match='square'):
        draw_masking_figure(images, salience[:, :15],
                            OrderedDict(a=np.zeros((2, 15))))
    with pytest.raises(ValueError, match='mask'):
        draw_masking_figure(images, salience,
                            OrderedDict(a=np.zeros((2, 9))))


def test_tool_writes_png_with_initial_weights_title(run_tool, tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        path = tmp_path / f'img{k}.png'
        Image.fromarray(
            rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    out = tmp_path / 'pics' / 'masks.png'
    proc = run_tool('tools/visualization/visualize_masks.py', '--config',
                    FMNIST_CONFIG, '--images', *paths, '--out', out,
                    timeout=120,
                    env=dict(MPLBACKEND='Agg', PYTHONWARNINGS='ignore'))
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(out) as im:
        assert im.format == 'PNG'
        w, h = im.size
        title = im.text.get('Title', '')
    # 2 rows x 5 columns (image, salience, random, SBM, SBAM) of 220 px
    assert 5 * 200 <= w <= 5 * 300 and 2 * 220 <= h <= 2 * 400
    assert 'initial weights' in title and 'no checkpoint' in title
    assert 'initial weights' in proc.stdout
    assert out.stat().st_size < 1_000_000
