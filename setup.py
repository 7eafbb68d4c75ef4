"""mmsbam: Salience-Based Adaptive Masking for MMPretrain.

``mmcv`` is deliberately not a requirement: mmpretrain's masked image
modeling needs no compiled ops, and listing ``mmcv`` would start a 15-minute
compile where no wheel exists, while listing ``mmcv-lite`` would clash with
an existing full ``mmcv``. ``tools/install.sh`` adds ``mmcv-lite`` only when
no ``mmcv`` is importable.

The extra ``lite`` is for users who bring their own environment without
any ``mmcv``: ``pip install -e .[lite]`` adds ``mmcv-lite==2.2.0`` (mmcv
without its compiled ops, which masked image modeling never calls;
mmpretrain imports mmcv). Do not use it next to a full ``mmcv``.
"""
from setuptools import find_packages, setup

setup(
    name='mmsbam',
    version='0.1.0',
    description='Salience-Based Adaptive Masking (SBAM, ECCV 2024) for '
    'MMPretrain',
    packages=find_packages(include=['mmsbam', 'mmsbam.*']),
    python_requires='>=3.8',
    install_requires=[
        'mmengine>=0.10.7,<0.11',
        'mmpretrain>=1.2.0,<1.3',
        # mmengine resolves ``mmpretrain::`` configs with pkg_resources,
        # which setuptools 81 removed.
        'setuptools<81',
        'numpy',
        'matplotlib',
    ],
    extras_require=dict(
        tests=['pytest'],
        pictures=['scikit-image'],
        lite=['mmcv-lite==2.2.0'],
    ),
)
