"""SBAM adapters of MMPretrain's masked modules, one file per stock method,
and one folder per method that mmsbam provides (``ibot/``, ``bootmae/``,
``cmae/``)."""
from .beit import SBAMBEiTPretrainViT
from .bootmae import (BootMAE, BootMAEHead, BootMAEMaskGenerator,
                      BootMAENeck, BootMAEViT, SBAMBootMAEViT)
from .cae import SBAMCAE, SBAMCAENeck, SBAMCAEPretrainViT
from .cmae import CMAE, CMAEViT, SBAMCMAEViT
from .hivit import SBAMMAEHiViT
from .ibot import (iBOT, iBOTHead, iBOTNeck, iBOTSalienceMaskGenerator,
                   iBOTViT)
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
    'SBAMCAEPretrainViT', 'SBAMCAE', 'SBAMCAENeck', 'SBAMMaskFeatViT',
    'SBAMSimMIMSwinTransformer',
    'SBAMBackboneMixin', 'SBAMMFFViT', 'SBAMMAEHiViT', 'SBAMiTPNHiViT',
    'SBAMMILANViT', 'CMAE', 'CMAEViT', 'SBAMCMAEViT', 'BootMAE', 'BootMAEViT',
    'SBAMBootMAEViT', 'BootMAENeck', 'BootMAEHead', 'BootMAEMaskGenerator'
]
