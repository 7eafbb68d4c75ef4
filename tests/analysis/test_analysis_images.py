"""mmsbam.analysis.images: idx files, resizing, channels, normalization."""
import gzip

import numpy as np
import pytest
import torch

from mmsbam.analysis import images as mi


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim])
    header += np.asarray(array.shape, dtype='>i4').tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_split(root, images, labels, split='t10k', gz=False):
    for name, array in ((f'{split}-images-idx3-ubyte', images),
                        (f'{split}-labels-idx1-ubyte', labels)):
        if gz:
            with gzip.open(root / (name + '.gz'), 'wb') as f:
                f.write(_idx_bytes(array))
        else:
            (root / name).write_bytes(_idx_bytes(array))


def test_read_idx_raw_and_gzipped(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / 'raw').write_bytes(_idx_bytes(data))
    with gzip.open(tmp_path / 'packed.gz', 'wb') as f:
        f.write(_idx_bytes(data[:1]))
    out = mi.read_idx(str(tmp_path), 'raw')
    np.testing.assert_array_equal(out, data)
    assert out.flags.writeable
    np.testing.assert_array_equal(mi.read_idx(str(tmp_path), 'packed'),
                                  data[:1])


def test_read_idx_refuses_missing_and_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothing'):
        mi.read_idx(str(tmp_path), 'nothing')
    (tmp_path / 'float').write_bytes(bytes([0, 0, 13, 1, 0, 0, 0, 1]) +
                                     b'\0' * 4)
    with pytest.raises(ValueError, match='uint8 idx'):
        mi.read_idx(str(tmp_path), 'float')
    data = np.zeros((2, 3), dtype=np.uint8)
    (tmp_path / 'short').write_bytes(_idx_bytes(data)[:-1])
    with pytest.raises(ValueError, match='5 bytes'):
        mi.read_idx(str(tmp_path), 'short')


@pytest.mark.parametrize('gz', [False, True])
def test_fashion_mnist_and_one_per_class(tmp_path, gz):
    images = np.random.default_rng(0).integers(
        0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 3, 1, 0, 1], dtype=np.uint8)
    _write_split(tmp_path, images, labels, gz=gz)
    x, y = mi.fashion_mnist(str(tmp_path), 't10k', num=4)
    assert x.shape == (4, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, images[:4])
    np.testing.assert_array_equal(y, labels[:4])
    picked, names = mi.fashion_mnist_per_class(str(tmp_path), 2)
    assert names == ['#0 Dress', '#2 Trouser']
    np.testing.assert_array_equal(picked[1], images[2])


def test_resize_center_crop_shapes_and_crop():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    assert mi.resize_center_crop(rgb, 16).shape == (16, 16, 3)
    assert mi.resize_center_crop(rgb[..., 0], 16).shape == (16, 16)
    assert mi.resize_center_crop(rgb[..., :1], 16).shape == (16, 16, 1)
    assert mi.resize_center_crop(rgb, 16).dtype == np.uint8
    # short side already 16: no resampling, the centre 16 columns
    wide = rng.integers(0, 256, size=(16, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(mi.resize_center_crop(wide, 16),
                                  wide[:, 8:24])
    square = rgb[:16, :16]
    np.testing.assert_array_equal(mi.resize_center_crop(square, 16), square)


def test_random_resized_crop_is_seeded():
    img = np.random.default_rng(0).integers(
        0, 256, size=(40, 50, 3), dtype=np.uint8)
    a = mi.random_resized_crop(img, 12, np.random.default_rng(1))
    b = mi.random_resized_crop(img, 12, np.random.default_rng(1))
    assert a.shape == (12, 12, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_to_channels():
    grey = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    assert mi.to_channels(grey, 1).shape == (2, 2, 1)
    rgb = mi.to_channels(grey, 3)
    assert rgb.shape == (2, 2, 3)
    np.testing.assert_array_equal(rgb[..., 2], grey)
    colour = np.zeros((1, 1, 3), dtype=np.uint8)
    colour[..., 1] = 100  # pure green: luma 0.587 * 100
    assert mi.to_channels(colour, 1)[0, 0, 0] == 59


def test_normalize_matches_direct_computation():
    imgs = np.random.default_rng(0).integers(
        0, 256, size=(2, 5, 6, 3), dtype=np.uint8)
    x = mi.normalize(imgs, mi.IMAGENET_MEAN, mi.IMAGENET_STD)
    assert x.shape == (2, 3, 5, 6) and x.dtype == torch.float32
    for c in range(3):
        expected = (imgs[..., c].astype(np.float64) - mi.IMAGENET_MEAN[c]) \
            / mi.IMAGENET_STD[c]
        np.testing.assert_allclose(x[:, c].numpy(), expected, rtol=1e-6,
                                   atol=1e-6)
    grey = mi.normalize(imgs[..., :1], [mi.FMNIST_MEAN], [mi.FMNIST_STD])
    np.testing.assert_allclose(
        grey[:, 0].numpy(),
        (imgs[..., 0] - mi.FMNIST_MEAN) / mi.FMNIST_STD, rtol=1e-6)


def test_read_image_file_and_unknown_name(tmp_path):
    from PIL import Image
    img = np.random.default_rng(0).integers(
        0, 256, size=(4, 5, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / 'x.png')
    np.testing.assert_array_equal(mi.read_image(str(tmp_path / 'x.png')), img)
    with pytest.raises(FileNotFoundError, match='skimage.data'):
        mi.read_image('no_such_image_anywhere')


def test_skimage_photos_are_colour_uint8():
    pytest.importorskip('skimage')
    photos = mi.skimage_photos(('astronaut', 'no_such_photo', 'camera'))
    names = [name for name, _ in photos]
    assert 'no_such_photo' not in names and 'camera' not in names  # grey
    for _, img in photos:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


def test_float_images_become_uint8():
    out = mi._to_uint8(np.array([[0.0, 0.5, 1.0]]))
    assert out.dtype == np.uint8 and out.tolist() == [[0, 128, 255]]
    out = mi._to_uint8(np.array([[-3.0, 17.4, 300.0]]))  # 0..255 scale
    assert out.tolist() == [[0, 17, 255]]
