"""The method of the paper, independent of any MIM model: token salience,
salience-based masking (SBM), the adaptive masking ratio (AMR) and the
``SalienceMasker`` that composes them."""
from .amr import (DEFAULT_DELTA, DEFAULT_RATIO_VAR, AdaptiveMaskRatio,
                  adaptive_mask_ratio, salient_fraction)
from .blockwise import iBOTBlockMaskGenerator, ibot_mask_ratios
from .generators import (MaskingResult, RandomMaskGenerator,
                         SalienceMaskGenerator, num_visible_tokens,
                         random_masking, salience_guided_masking)
from .masker import (SALIENCE_SOURCES, MaskingRecord, SalienceMasker,
                     find_maskers, masking_statistics)
from .salience import (attention_logits, attention_salience,
                       block_attention_salience, normalize_salience,
                       token_salience, validate_temperature)
from .salience_blockwise import (SalienceBlockMaskGenerator,
                                 salience_block_masking)

__all__ = [
    'token_salience', 'attention_salience', 'block_attention_salience',
    'attention_logits', 'normalize_salience',
    'validate_temperature', 'salience_guided_masking', 'random_masking',
    'num_visible_tokens', 'MaskingResult', 'SalienceMaskGenerator',
    'RandomMaskGenerator', 'adaptive_mask_ratio', 'salient_fraction',
    'AdaptiveMaskRatio', 'DEFAULT_DELTA', 'DEFAULT_RATIO_VAR',
    'SalienceMasker', 'MaskingRecord', 'masking_statistics',
    'SALIENCE_SOURCES', 'find_maskers', 'iBOTBlockMaskGenerator',
    'ibot_mask_ratios', 'salience_block_masking', 'SalienceBlockMaskGenerator'
]
