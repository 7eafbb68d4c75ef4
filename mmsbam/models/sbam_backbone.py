"""``SBAMBackboneMixin``: what every token-dropping SBAM backbone adds to
its stock class: the masking arguments and a composed ``SalienceMasker``.

A backbone lists it before the stock class (``class SBAMMFFViT(
SBAMBackboneMixin, MFFViT)``) and overrides only the stock masking method.
"""
from typing import Optional, Tuple

from mmpretrain.registry import MODELS

__all__ = ['SBAMBackboneMixin']


class SBAMBackboneMixin:
    """Builds ``self.masker`` from ``masker=dict(...)`` or the shorthands.

    Args:
        noise_scale (float, optional): SBM noise width. Masker default 0.5.
        temperature (float, optional): Salience softmax temperature. Masker
            default 1.0.
        salience_source (str, optional): One of the class's
            ``salience_sources``. Masker default ``'embedding'``.
        salience_layer (int, optional): Block of the ``'attention'`` source.
        amr (dict, optional): ``dict(ratio_var=..., delta=...,
            mode='sample'|'batch')``, plus ``sync=True`` for one batch
            ratio over all processes; None masks with ``mask_ratio``.
        mask_generator (dict, optional): A registered mask generator.
        masker (dict, optional): The whole ``SalienceMasker`` config;
            excludes the shorthands; its ``mask_ratio`` is the backbone's.
    """

    #: salience sources the backbone can feed
    salience_sources: Tuple[str, ...] = ('embedding', 'attention')
    #: whether per-image AMR (``amr=dict(mode='sample')``) is supported
    supports_sample_amr: bool = True

    def __init__(self,
                 *args,
                 noise_scale: Optional[float] = None,
                 temperature: Optional[float] = None,
                 salience_source: Optional[str] = None,
                 salience_layer: Optional[int] = None,
                 amr: Optional[dict] = None,
                 mask_generator: Optional[dict] = None,
                 masker: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        name = type(self).__name__
        shorthands = dict(
            salience_source=salience_source, temperature=temperature,
            salience_layer=salience_layer, noise_scale=noise_scale,
            mask_generator=mask_generator, amr=amr)
        shorthands = {k: v for k, v in shorthands.items() if v is not None}
        if masker is None:
            masker = dict(type='SalienceMasker', **shorthands)
        elif not isinstance(masker, dict):
            raise TypeError(f'{name}: masker must be None or a '
                            "dict(type='SalienceMasker', ...), got "
                            f'{masker!r}')
        elif shorthands:
            raise ValueError(
                f'{name}: give the masking settings in masker=dict(...) or '
                f'as {name} arguments, not both (got masker and '
                f'{sorted(shorthands)})')
        masker = dict(masker)
        if masker.setdefault('mask_ratio', self.mask_ratio) != \
                self.mask_ratio:
            raise ValueError(
                f"{name}: masker.mask_ratio={masker['mask_ratio']!r} differs "
                f'from the backbone mask_ratio={self.mask_ratio!r}; set '
                'mask_ratio on the backbone only')
        self.masker = MODELS.build(masker)
        if self.masker.salience_source not in self.salience_sources:
            raise ValueError(
                f'{name}: salience_source must be one of '
                f'{self.salience_sources}, got '
                f'{self.masker.salience_source!r}')
        amr_mode = getattr(self.masker.amr, 'mode', None)
        if amr_mode == 'sample' and not self.supports_sample_amr:
            raise ValueError(
                f"{name}: amr mode='sample' (one ratio per image) is not "
                f'supported: {self.sample_amr_obstacle}. '
                "amr=dict(mode='batch') works.")
        if self.masker.salience_source == 'attention':
            self.masker.check_layers(len(self.layers))

    #: why per-image AMR is refused, for the error message
    sample_amr_obstacle: str = ''

    @staticmethod
    def is_masked_forward(mask) -> bool:
        """Whether ``forward(x, mask)`` masks: ``None`` and ``False`` ask
        for the features of the unmasked image, as the docstrings of
        MMPretrain's MAE-family backbones say (their code's ``mask is None
        or False`` test masks on ``False``, and ``MFFViT`` on ``None``
        too)."""
        return mask is not None and mask is not False
