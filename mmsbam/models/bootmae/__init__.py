"""BootMAE (Dong et al., ECCV 2022), which MMPretrain 1.2.0 lacks:
algorithm, encoder (and its SBAM twin), mask generator, decoders, head and
schedules."""
from .bootmae import BootMAE
from .bootmae_head import BootMAEHead
from .bootmae_mask_generator import BootMAEMaskGenerator
from .bootmae_neck import BootMAEDecoder, BootMAENeck
from .bootmae_schedules import bootmae_ema_decay, bootmae_feature_weight
from .bootmae_vit import BootMAEViT, SBAMBootMAEViT

__all__ = [
    'BootMAE', 'BootMAEViT', 'SBAMBootMAEViT', 'BootMAENeck',
    'BootMAEDecoder', 'BootMAEHead', 'BootMAEMaskGenerator',
    'bootmae_ema_decay', 'bootmae_feature_weight'
]
