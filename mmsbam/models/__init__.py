"""SBAM versions of MMPretrain's masked modules, one file per method, and
iBoT (which MMPretrain 1.2.0 lacks)."""
from .beit import SBAMBEiTPretrainViT
from .cae import SBAMCAEPretrainViT
from .hivit import SBAMMAEHiViT
from .ibot import iBOT, iBOTViT
from .ibot_head import iBOTHead
from .ibot_mask_generator import iBOTSalienceMaskGenerator
from .ibot_neck import iBOTNeck
from .image_checks import check_images
from .itpn import SBAMiTPNHiViT
from .mae import SBAMViT
from .mask_token import SBAMMaskTokenMixin
from .maskfeat import SBAMMaskFeatViT
from .mff import SBAMMFFViT
from .milan import SBAMMILANViT
from .sbam_backbone import SBAMBackboneMixin
from .simmim import SBAMSimMIMSwinTransformer

__all__ = [
    'SBAMViT', 'check_images', 'iBOT', 'iBOTViT', 'iBOTNeck', 'iBOTHead',
    'iBOTSalienceMaskGenerator', 'SBAMMaskTokenMixin', 'SBAMBEiTPretrainViT',
    'SBAMCAEPretrainViT', 'SBAMMaskFeatViT', 'SBAMSimMIMSwinTransformer',
    'SBAMBackboneMixin', 'SBAMMFFViT', 'SBAMMAEHiViT', 'SBAMiTPNHiViT',
    'SBAMMILANViT'
]
