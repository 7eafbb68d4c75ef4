"""mmsbam: Salience-Based Adaptive Masking (SBAM, ECCV 2024) for MMPretrain.

Import it through ``custom_imports = dict(imports=['mmsbam'])``; this
registers the components below in MMPretrain's registries and makes
MMEngine checkpoints loadable under torch >= 2.6 (see :mod:`mmsbam.compat`).
"""
from .compat import allow_mmengine_checkpoints, fix_adjust_hue
from .engine import NonFiniteLossHook, RandomStateHook, SBAMHook
from .masking import (AdaptiveMaskRatio, MaskingRecord, MaskingResult,
                      RandomMaskGenerator, SalienceMasker,
                      SalienceMaskGenerator, adaptive_mask_ratio,
                      attention_salience, random_masking,
                      salience_guided_masking, token_salience)
from . import datasets  # noqa: F401  (registers ClutteredFashionMNIST)
from .models import SBAMViT

__version__ = '0.1.0'

allow_mmengine_checkpoints()
fix_adjust_hue()

__all__ = [
    'token_salience', 'attention_salience', 'adaptive_mask_ratio',
    'salience_guided_masking', 'random_masking', 'MaskingResult',
    'SalienceMaskGenerator', 'RandomMaskGenerator', 'AdaptiveMaskRatio',
    'SalienceMasker', 'MaskingRecord', 'SBAMViT', 'SBAMHook',
    'RandomStateHook', 'NonFiniteLossHook', 'allow_mmengine_checkpoints',
    '__version__'
]
