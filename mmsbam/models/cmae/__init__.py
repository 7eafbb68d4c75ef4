"""CMAE (Huang et al., TPAMI 2023), which MMPretrain 1.2.0 lacks: the
algorithm, its encoder with cell masking, and the SBAM twin's encoder
(``ShiftPixel``, its view transform, is in
:mod:`mmsbam.datasets.transforms`)."""
from .cmae import CMAE
from .cmae_vit import CMAEViT, expand_cells, pool_cells
from .sbam_cmae_vit import SBAMCMAEViT

__all__ = ['CMAE', 'CMAEViT', 'SBAMCMAEViT', 'expand_cells', 'pool_cells']
