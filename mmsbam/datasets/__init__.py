"""Datasets and transforms (MMPretrain's ``datasets`` layout)."""
from .transforms import ShiftPixel

__all__ = ['ShiftPixel']
