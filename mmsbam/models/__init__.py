"""SBAM versions of MMPretrain's masked modules, one file per method, and
iBoT (which MMPretrain 1.2.0 lacks)."""
from .ibot import iBOT, iBOTViT
from .ibot_head import iBOTHead
from .ibot_mask_generator import iBOTSalienceMaskGenerator
from .ibot_neck import iBOTNeck
from .image_checks import check_images
from .mae import SBAMViT

__all__ = [
    'SBAMViT', 'check_images', 'iBOT', 'iBOTViT', 'iBOTNeck', 'iBOTHead',
    'iBOTSalienceMaskGenerator'
]
