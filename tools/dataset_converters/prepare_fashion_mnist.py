"""Unpack Debian's ``dataset-fashion-mnist`` into MMPretrain's layout.

MMPretrain's ``FashionMNIST`` reads the four idx files, un-gzipped, from
its ``data_root``. Debian ships them gzipped under
``/usr/share/datasets/fashion-mnist`` (re-compressed, so the archives' MD5
differ from the upstream ones MMPretrain lists). This script un-gzips them
and checks each file's idx header: magic number, item count and 28x28 size.

Example:
    python tools/dataset_converters/prepare_fashion_mnist.py \
        --out data/fashion_mnist
"""
import argparse
import gzip
import struct
import os
import os.path as osp
import shutil
import sys

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'


#: file -> (idx magic number, item count); images are 28x28 uint8.
EXPECTED = {
    'train-images-idx3-ubyte': (2051, 60000),
    'train-labels-idx1-ubyte': (2049, 60000),
    't10k-images-idx3-ubyte': (2051, 10000),
    't10k-labels-idx1-ubyte': (2049, 10000),
}


def check_idx(path: str, magic: int, count: int) -> None:
    """Exit with a clear message unless ``path`` is the expected idx file."""
    with open(path, 'rb') as f:
        header = f.read(16)
        size = os.fstat(f.fileno()).st_size
    got_magic, got_count = struct.unpack('>II', header[:8])
    expected_size = 8 + count
    if magic == 2051:
        rows, cols = struct.unpack('>II', header[8:16])
        expected_size = 16 + count * 28 * 28
        if (rows, cols) != (28, 28):
            sys.exit(f'error: {path} holds {rows}x{cols} images, not 28x28')
    if (got_magic, got_count, size) != (magic, count, expected_size):
        sys.exit(f'error: {path} is not a complete Fashion-MNIST idx file '
                 f'(magic {got_magic}, {got_count} items, {size} bytes; '
                 f'expected magic {magic}, {count} items, '
                 f'{expected_size} bytes)')


def prepare(src: str, out: str) -> None:
    """Un-gzip and check every Fashion-MNIST file from ``src`` into ``out``."""
    os.makedirs(out, exist_ok=True)
    for name, (magic, count) in EXPECTED.items():
        gz_path = osp.join(src, name + '.gz')
        raw_path = osp.join(out, name)
        if not osp.isfile(raw_path):
            if not osp.isfile(gz_path):
                sys.exit(f'error: {gz_path} is missing; install it with '
                         '`apt-get install dataset-fashion-mnist`')
            tmp = raw_path + '.part'
            with gzip.open(gz_path, 'rb') as fin, open(tmp, 'wb') as fout:
                shutil.copyfileobj(fin, fout)
            os.replace(tmp, raw_path)
        check_idx(raw_path, magic, count)
    print(f'Fashion-MNIST ready in {out}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--src', default=DEBIAN_DIR,
                        help='folder with the .gz files')
    parser.add_argument('--out', default='data/fashion_mnist',
                        help='data_root for MMPretrain')
    args = parser.parse_args()
    prepare(args.src, args.out)


if __name__ == '__main__':
    main()
