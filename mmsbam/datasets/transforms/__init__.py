"""Data transforms that mmsbam's methods add to MMPretrain's."""
from .shift_pixel import ShiftPixel

__all__ = ['ShiftPixel']
