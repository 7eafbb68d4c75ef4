"""Datasets registered in MMPretrain's ``DATASETS``."""
from .cluttered_fashion_mnist import ClutteredFashionMNIST

__all__ = ['ClutteredFashionMNIST']
