"""Datasets and transforms (MMPretrain's ``datasets`` layout), registered
in MMPretrain's ``DATASETS`` and ``TRANSFORMS``."""
from .cluttered_fashion_mnist import ClutteredFashionMNIST
from .transforms import ShiftPixel

__all__ = ['ClutteredFashionMNIST', 'ShiftPixel']
