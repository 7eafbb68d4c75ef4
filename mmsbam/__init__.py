"""mmsbam: Salience-Based Adaptive Masking (SBAM, ECCV 2024) for MMPretrain.

Import it through ``custom_imports = dict(imports=['mmsbam'])``; this
registers the components below in MMPretrain's registries and makes
MMEngine checkpoints loadable under torch >= 2.6 (see :mod:`mmsbam.compat`).
"""
from .amr import AdaptiveMaskRatio, adaptive_mask_ratio
from .compat import allow_mmengine_checkpoints
from .hooks import SBAMHook
from .masking import (MaskingResult, RandomMaskGenerator,
                      SalienceMaskGenerator, random_masking,
                      salience_guided_masking)
from .random_state import RandomStateHook
from .salience import attention_salience, token_salience
from .sbam_vit import SBAMViT

__version__ = '0.1.0'

allow_mmengine_checkpoints()

__all__ = [
    'token_salience', 'attention_salience', 'adaptive_mask_ratio',
    'salience_guided_masking', 'random_masking', 'MaskingResult',
    'SalienceMaskGenerator', 'RandomMaskGenerator', 'AdaptiveMaskRatio',
    'SBAMViT', 'SBAMHook', 'RandomStateHook', 'allow_mmengine_checkpoints',
    '__version__'
]
