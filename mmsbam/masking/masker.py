"""``SalienceMasker``: the one masking core every SBAM model composes.

It owns what is not specific to any MIM method: the salience source and
temperature, the mask generator, AMR, the switch between SBAM and random
masking, a typed record of the last masking and the first-batch report.
A model hands it patch tokens (or a salience map computed elsewhere, e.g.
by a teacher) and gets a :class:`~mmsbam.masking.MaskingResult` back.
"""
from typing import Dict, NamedTuple, Optional, Union

import torch
from mmengine.logging import MMLogger
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from .amr import DEFAULT_DELTA, DEFAULT_RATIO_VAR, check_amr_args
from .generators import MaskingResult, RandomMaskGenerator
from .salience import attention_salience, token_salience, validate_temperature

__all__ = [
    'SalienceMasker', 'MaskingRecord', 'masking_statistics',
    'SALIENCE_SOURCES', 'find_maskers'
]

#: ``teacher``: the salience is computed by the model (e.g. from its
#: teacher's attention) and passed as ``masker(salience=...)``.
SALIENCE_SOURCES = ('embedding', 'attention', 'teacher')


def masking_statistics(salience: Tensor,
                       mask: Tensor) -> Dict[str, float]:
    """Masking statistics of one batch.

    Args:
        salience (Tensor): (B, L) normalized salience ``ŝ``.
        mask (Tensor): (B, L), 1 = masked, 0 = visible.

    Returns:
        dict: ``ratio_mean``, ``ratio_min``, ``ratio_max`` (per-image masked
        fraction ``mask.mean(1)``), ``salience_masked`` and
        ``salience_visible`` (mean ``ŝ`` over all masked / visible tokens of
        the batch; 0 when there are none).
    """
    s = salience.detach().float()
    m = mask.detach().float()
    ratio = m.mean(1)
    masked = (s * m).sum() / m.sum().clamp(min=1)
    visible = (s * (1 - m)).sum() / (1 - m).sum().clamp(min=1)
    # one device -> host transfer for all values
    values = torch.stack(
        [ratio.mean(), ratio.min(), ratio.max(), masked, visible]).tolist()
    names = ('ratio_mean', 'ratio_min', 'ratio_max', 'salience_masked',
             'salience_visible')
    return dict(zip(names, values))


class MaskingRecord(NamedTuple):
    """What the last call of a :class:`SalienceMasker` did (all detached).

    Attributes:
        salience (Tensor): (B, L) normalized salience ``ŝ``.
        masking (MaskingResult): The masks and indices it returned.
        ratio (Tensor): (B,) masking ratio asked for each image.
        sbam_enabled (bool): False if it masked at random (warm-up).
    """
    salience: Tensor
    masking: MaskingResult
    ratio: Tensor
    sbam_enabled: bool

    @property
    def mask(self) -> Tensor:
        """(B, L) float, 1 = masked."""
        return self.masking.mask

    def statistics(self) -> Dict[str, float]:
        """:func:`masking_statistics` of this masking."""
        return masking_statistics(self.salience, self.mask)


@MODELS.register_module()
class SalienceMasker(nn.Module):
    """Salience-based adaptive masking of one token grid.

    Parameter-free, so a model that composes one keeps the state dict of
    its stock class. Calling it with patch tokens (B, L, D), or with a
    ready salience map (B, L), returns a :class:`MaskingResult` in
    MMPretrain's convention (1 = masked) and keeps a :class:`MaskingRecord`
    in ``last_masking`` for hooks and pictures.

    Example:
        >>> masker = MODELS.build(dict(type='SalienceMasker', mask_ratio=0.75))
        >>> masking = masker(tokens)  # tokens: (B, L, D) patch + pos embed

    Args:
        mask_ratio (float, optional): Masking ratio in (0, 1); AMR's
            ``r_base``. None: the model passes ``ratio`` or ``num_masked``
            at every call (mask-token methods keep their pipeline's counts).
        salience_source (str): ``'embedding'`` (parameter-free ``X Xᵀ`` of
            the tokens) or ``'attention'`` (self-attention of encoder block
            ``salience_layer``; the caller passes its ``layers``) or
            ``'teacher'`` (the model passes ``salience=``, e.g. its
            teacher's attention). Defaults to ``'embedding'``.
        temperature (float): Softmax temperature of the salience. Defaults
            to 1.0.
        salience_layer (int): Block used by ``salience_source='attention'``.
            Defaults to 0.
        noise_scale (float): Width of SBM's uniform noise; ignored when
            ``mask_generator`` is given. Defaults to 0.5.
        mask_generator (dict, optional): Config of a registered mask
            generator. Defaults to
            ``dict(type='SalienceMaskGenerator', noise_scale=noise_scale)``.
        amr (dict, optional): Adaptive masking ratio,
            ``dict(ratio_var=..., delta=..., mode='sample'|'batch',
            sync=False)`` (``sync=True``: batch mode over the global batch
            of all processes); None masks every image with ``mask_ratio``.
            Defaults to None.
    """

    def __init__(self,
                 mask_ratio: Optional[float],
                 salience_source: str = 'embedding',
                 temperature: float = 1.0,
                 salience_layer: int = 0,
                 noise_scale: float = 0.5,
                 mask_generator: Optional[dict] = None,
                 amr: Optional[dict] = None) -> None:
        super().__init__()
        if mask_ratio is not None and (isinstance(mask_ratio, bool) or (
                not isinstance(mask_ratio, (int, float)))
                or not 0 < mask_ratio < 1):
            raise ValueError(
                f'mask_ratio must be in (0, 1), got {mask_ratio!r}')
        self.mask_ratio = None if mask_ratio is None else float(mask_ratio)
        self.temperature = validate_temperature(temperature)
        if salience_source not in SALIENCE_SOURCES:
            raise ValueError(f'salience_source must be one of '
                             f'{SALIENCE_SOURCES}, got {salience_source!r}')
        self.salience_source = salience_source
        if salience_source == 'attention' and (
                isinstance(salience_layer, bool)
                or not isinstance(salience_layer, int) or salience_layer < 0):
            raise ValueError('salience_layer must be in [0, number of '
                             f'encoder layers), got {salience_layer!r}')
        self.salience_layer = salience_layer
        if mask_generator is None:
            mask_generator = dict(
                type='SalienceMaskGenerator', noise_scale=noise_scale)
        elif not isinstance(mask_generator, dict):
            raise TypeError(
                'mask_generator must be None or a config dict of a '
                "registered generator (dict(type='SalienceMaskGenerator', "
                f'...)), got {mask_generator!r}')
        self.mask_generator = MODELS.build(mask_generator)
        self.amr = self._build_amr(amr)
        #: True: SBAM; False: random masking at ``mask_ratio`` (stock MAE),
        #: e.g. during SBAMHook's warm-up. The salience is computed either
        #: way, so statistics compare the two. Not saved in checkpoints.
        self.sbam_enabled = True
        self.last_masking: Optional[MaskingRecord] = None
        self._random_generator = RandomMaskGenerator()
        self._reported_modes: set = set()  # first-batch report, per mode

    def _build_amr(self, amr: Optional[dict]):
        if amr is None:
            return None
        if not isinstance(amr, dict):
            raise TypeError(f'amr must be a dict or None, got {type(amr)}')
        amr = dict(amr)
        unknown = set(amr) - {'type', 'ratio_var', 'delta', 'mode', 'sync'}
        if unknown:
            raise ValueError(f'amr got unknown keys {sorted(unknown)}; allowed:'
                             " 'ratio_var', 'delta', 'mode', 'sync'")
        amr.setdefault('type', 'AdaptiveMaskRatio')
        amr.setdefault('ratio_var', DEFAULT_RATIO_VAR)
        amr.setdefault('delta', DEFAULT_DELTA)
        amr.setdefault('mode', 'sample')
        amr.setdefault('sync', False)
        if self.mask_ratio is None:
            raise ValueError('amr needs mask_ratio, the base ratio r_base '
                             'in (0, 1); got mask_ratio=None')
        check_amr_args(self.mask_ratio, amr['ratio_var'], amr['delta'],
                       amr['mode'], base_name='mask_ratio',
                       sync=amr['sync'])
        return MODELS.build(dict(base_ratio=self.mask_ratio, **amr))

    def check_layers(self, num_layers: int) -> None:
        """Refuse, at build time, an attention block the encoder lacks."""
        if self.salience_source == 'attention' and \
                not self.salience_layer < num_layers:
            raise ValueError(f'salience_layer must be in [0, '
                             f'{num_layers - 1}], got {self.salience_layer!r}')

    def salience(self, tokens: Tensor,
                 layers: Optional[nn.ModuleList] = None) -> Tensor:
        """Normalized salience ``ŝ`` (B, L) of patch tokens (B, L, D)."""
        if self.salience_source == 'teacher':
            raise ValueError("salience_source='teacher': the model computes "
                             'the salience; call masker(salience=...)')
        if self.salience_source == 'attention':
            if layers is None:
                raise ValueError("salience_source='attention' needs the "
                                 'encoder layers: masker(tokens, layers=...)')
            return attention_salience(tokens, layers, self.salience_layer,
                                      self.temperature)
        return token_salience(tokens, self.temperature)

    def forward(self,
                tokens: Optional[Tensor] = None,
                layers: Optional[nn.ModuleList] = None,
                salience: Optional[Tensor] = None,
                ratio: Optional[Union[float, Tensor]] = None,
                num_masked: Optional[Tensor] = None) -> MaskingResult:
        """Mask one batch.

        Args:
            tokens (Tensor, optional): Patch tokens (B, L, D) of the full
                image (patch plus position embedding, no class token).
            layers (nn.ModuleList, optional): Encoder layers, for the
                ``'attention'`` source.
            salience (Tensor, optional): A ready normalized salience
                (B, L) in [0, 1]; then ``tokens`` is not needed.
            ratio (float | Tensor, optional): Ratios chosen by the method
                (e.g. iBoT's per-image policy), in [0, 1), 0 leaving an image
                unmasked; they replace ``mask_ratio`` and AMR's ratios.
            num_masked (Tensor, optional): (B,) exact masked counts chosen
                by the method (e.g. those of its pipeline masks), in
                [0, L]; like ``ratio`` they replace ``mask_ratio`` and AMR.
                Give ``ratio`` or ``num_masked``, not both.

        Returns:
            MaskingResult: mask, ids_restore, ids_keep and num_visible.
        """
        if salience is None:
            if tokens is None:
                raise ValueError('SalienceMasker needs tokens or salience')
            salience = self.salience(tokens, layers)
        if self.sbam_enabled:
            generator, amr = self.mask_generator, self.amr
        else:
            generator, amr = self._random_generator, None
        if ratio is not None and num_masked is not None:
            raise ValueError('SalienceMasker: give ratio or num_masked, '
                             'not both')
        if num_masked is not None:
            amr = None
            L = salience.shape[1]
            masking = generator(salience, 0.0, allow_zero=True,
                                num_visible=L - num_masked.long())
            ratio = masking.mask.mean(1)  # exactly num_masked / L
        elif ratio is not None:
            amr = None
            masking = generator(salience, ratio, allow_zero=True)
        else:
            if self.mask_ratio is None:
                raise ValueError(
                    'SalienceMasker(mask_ratio=None) masks at the ratios or '
                    'counts its model passes: call it with ratio= or '
                    'num_masked=')
            ratio = amr(salience) if amr is not None else self.mask_ratio
            masking = generator(salience, ratio)
        ratios = ratio if isinstance(ratio, Tensor) else torch.full(
            (salience.shape[0], ), float(ratio), device=salience.device)
        self.last_masking = MaskingRecord(salience.detach(), masking,
                                          ratios.detach(), self.sbam_enabled)
        if self.training and self.sbam_enabled not in self._reported_modes:
            self._reported_modes.add(self.sbam_enabled)
            self._report_first_batch(tokens, generator, amr)
        return masking

    def mask_from_pipeline(self, salience: Tensor, num_masked: Tensor,
                           tokens: Optional[Tensor] = None
                           ) -> MaskingResult:
        """Mask for a method that draws its own masks in the data pipeline
        (mask-token methods, iTPN's CLIP target): each image keeps its
        pipeline count (exact, not through a float ratio), or with AMR (SBAM
        on) its pipeline ratio moves by AMR's offset ``r_b - mask_ratio``.

        Args:
            salience (Tensor): (B, L) normalized salience of the mask grid.
            num_masked (Tensor): (B,) masked cells of each pipeline mask.
            tokens (Tensor, optional): The tokens scored, for the
                first-batch report.
        """
        amr = self.amr
        if amr is None or not self.sbam_enabled:
            return self(tokens, salience=salience, num_masked=num_masked)
        L = salience.shape[1]
        base = num_masked.to(salience.device, torch.float32) / L
        ratio = base + amr(salience).to(base) - amr.base_ratio
        return self(tokens, salience=salience,
                    ratio=ratio.clamp(0, 1 - 1.5 / L))

    def _report_first_batch(self, tokens: Optional[Tensor], generator,
                            amr) -> None:
        """Say once per mode what SBAM does on real data, and warn when the
        salience is too flat to matter (wide embeddings, ``temperature=1``)."""
        logger = MMLogger.get_current_instance()
        record = self.last_masking
        L = record.salience.shape[1]
        masked = record.mask.sum(1)
        median = float(record.salience.float().median())
        msg = (f'SBAM first batch of this mode: {generator!r}, '
               f'{self.salience_source} salience (temperature '
               f'{self.temperature:g}) median {median:.3g}; masked tokens '
               f'per image {int(masked.min())}..{int(masked.max())} of {L}')
        if amr is not None:
            msg += f'; {amr!r}'
        logger.info(msg)
        if getattr(generator, 'uses_salience', True) and median < 1e-3 \
                and tokens is not None:
            norm = float(tokens.detach().float().norm(dim=-1).mean())
            logger.warning(
                f'SBAM: the salience is nearly flat (median {median:.2g}, '
                f'mean token norm {norm:.3g}): X Xᵀ / temperature is '
                'dominated by its diagonal, so masking is close to random '
                'and AMR gives every image about mask_ratio - ratio_var. '
                'This is the paper formula on these weights; a larger '
                f'temperature (e.g. {tokens.shape[-1]}, the embedding '
                'width) spreads it. See docs/method.md, "Salience scale".')

    def extra_repr(self) -> str:
        amr = f', amr={self.amr!r}' if self.amr is not None else ''
        return (f'mask_ratio={self.mask_ratio}, salience_source='
                f"'{self.salience_source}', temperature={self.temperature:g}, "
                f'mask_generator={self.mask_generator!r}{amr}')


def find_maskers(model: nn.Module) -> Dict[str, SalienceMasker]:
    """Every :class:`SalienceMasker` of ``model`` that masks, by module name
    in module order. A masker whose owner declares ``replaces_masks()``
    False (CAE's momentum teacher, built from the SBAM backbone config and
    marked by ``SBAMCAE``) is left out."""
    found = {}
    for name, module in model.named_modules():
        if not isinstance(module, SalienceMasker):
            continue
        owner = model.get_submodule(name.rpartition('.')[0])
        replaces = getattr(owner, 'replaces_masks', None)
        if replaces is None or replaces():
            found[name] = module
    return found
