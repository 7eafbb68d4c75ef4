"""Random, SBM and SBAM maskings of one salience map with the same noise,
so that differences between them come from the salience alone."""
from collections import OrderedDict
from typing import Dict, Union

import torch
from torch import Tensor

from ..masking import MaskingResult, random_masking, salience_guided_masking

__all__ = ['seeded_maskings']


def seeded_maskings(salience: Tensor, ratio: float, ratios: Union[float,
                                                                  Tensor],
                    noise_scale: float,
                    seed: int) -> Dict[str, MaskingResult]:
    """Mask ``salience`` three ways, each with a ``torch.Generator`` seeded
    with ``seed`` (the same noise in all three).

    Args:
        salience (Tensor): (B, L) normalized salience.
        ratio (float): Fixed masking ratio of ``random`` and ``sbm``.
        ratios (float | Tensor): Ratio of ``sbam``, e.g. AMR's (B,) ratios.
        noise_scale (float): Width of SBM's uniform noise.
        seed (int): Seed of the noise.

    Returns:
        OrderedDict: ``random`` (MAE's uniform masking), ``sbm`` (salience
        based at ``ratio``) and ``sbam`` (salience based at ``ratios``).
    """

    def gen() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return OrderedDict(
        random=random_masking(salience, ratio, gen()),
        sbm=salience_guided_masking(salience, ratio, noise_scale, gen()),
        sbam=salience_guided_masking(salience, ratios, noise_scale, gen()))
