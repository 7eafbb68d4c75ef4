"""iBoT (Zhou et al., ICLR 2022), which MMPretrain 1.2.0 lacks: algorithm,
neck, head and the salience-guided mask generator of its SBAM twin."""
from .ibot import iBOT, iBOTViT, ibot_backbone_state
from .ibot_head import iBOTHead
from .ibot_mask_generator import iBOTSalienceMaskGenerator
from .ibot_neck import iBOTNeck

__all__ = [
    'iBOT', 'iBOTViT', 'iBOTHead', 'iBOTNeck', 'iBOTSalienceMaskGenerator',
    'ibot_backbone_state'
]
