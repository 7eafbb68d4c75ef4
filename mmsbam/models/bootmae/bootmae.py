"""``BootMAE`` (Dong et al., ECCV 2022) as an MMPretrain algorithm.

MMPretrain 1.2.0 has no BootMAE; this follows the official code
(LightDXY/BootMAE ``d604b18``, summarised in ``shared/BOOTMAE_CMAE.md``).
The encoder, mask generator, decoders, losses and schedules live in their
own modules of this folder.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.logging import MessageHub
from mmengine.model import ExponentialMovingAverage
from torch import Tensor

from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...masking import block_attention_salience
from .bootmae_schedules import (bootmae_ema_decay, bootmae_feature_weight,
                                check_ema_schedule)

__all__ = ['BootMAE']



def _is_real(value) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)

@MODELS.register_module()
class BootMAE(BaseSelfSupervisor):
    """BootMAE: pixel reconstruction plus a bootstrapped latent target.

    Each ``loss`` call: EMA update of the target encoder (decay
    :func:`bootmae_ema_decay` of the epoch), its forward on the unmasked
    images (the last block's patch tokens, no final norm), the student's
    masked forward, both decoders of ``neck``, and the losses of ``head``
    (``loss_pixel`` + lambda_f(epoch) * Ploss, :func:`bootmae_feature_weight`).

    The official code updates the EMA after each optimizer step; updating
    at the start of the next ``loss`` (as MMPretrain's BYOL and MoCo v3 do)
    gives the same target, except that the decay of the first iteration of
    an epoch is already the new epoch's. The EMA covers the encoder only
    (the official one also averages the decoders, which it never uses).

    Example:
        >>> model = dict(type='BootMAE', backbone=dict(type='BootMAEViT'),
        ...              neck=dict(type='BootMAENeck'),
        ...              head=dict(type='BootMAEHead'))

    Args:
        backbone (dict): ``BootMAEViT`` or ``SBAMBootMAEViT`` config.
        neck (dict): ``BootMAENeck`` config.
        head (dict): ``BootMAEHead`` config.
        ema_decays (Sequence[float]): (start, middle, end) EMA decays.
            Defaults to the official (0.999, 0.9999, 0.99999).
        ema_epochs (Sequence[float]): Lengths of the two decay ramps.
            Defaults to (100, 300).
        ema_dynamic (bool): Use the second ramp (``--model_ema_dynamic``).
            Defaults to True.
        feature_weight (float): F, the final weight of the feature loss.
            Defaults to 1.
        feature_ramp_epochs (float): Epochs for lambda_f to reach F, a
            quarter of the official ``--epochs``. Defaults to 801 / 4.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 ema_decays: Sequence[float] = (0.999, 0.9999, 0.99999),
                 ema_epochs: Sequence[float] = (100, 300),
                 ema_dynamic: bool = True,
                 feature_weight: float = 1.0,
                 feature_ramp_epochs: float = 801 / 4,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        check_ema_schedule(ema_decays, ema_epochs)
        if not (_is_real(feature_weight) and 0 <= feature_weight < math.inf):
            raise ValueError('BootMAE: feature_weight must be a finite '
                             f'number >= 0, got {feature_weight!r}')
        if not (_is_real(feature_ramp_epochs)
                and 0 < feature_ramp_epochs < math.inf):
            raise ValueError('BootMAE: feature_ramp_epochs must be a finite '
                             f'number > 0, got {feature_ramp_epochs!r}')
        self.ema_decays = tuple(float(d) for d in ema_decays)
        self.ema_epochs = tuple(float(e) for e in ema_epochs)
        self.ema_dynamic = bool(ema_dynamic)
        self.feature_weight = float(feature_weight)
        self.feature_ramp_epochs = float(feature_ramp_epochs)
        self.teacher = ExponentialMovingAverage(
            self.backbone, momentum=1 - self.ema_decays[0])

    def train(self, mode: bool = True) -> 'BootMAE':
        """The EMA encoder stays in eval mode (official ``feat_model.eval()``)
        whatever ``mode``."""
        super().train(mode)
        self.teacher.eval()
        return self

    @staticmethod
    def current_epoch() -> int:
        """The 0-based epoch MMEngine's ``RuntimeInfoHook`` publishes (0
        outside a run)."""
        return int(MessageHub.get_current_instance().get_info('epoch', 0))

    def ema_decay(self, epoch: int) -> float:
        """The EMA decay of ``epoch``."""
        return bootmae_ema_decay(epoch, self.ema_decays, self.ema_epochs,
                                 self.ema_dynamic)

    def lambda_f(self, epoch: int) -> float:
        """The feature-loss weight of ``epoch``."""
        return bootmae_feature_weight(epoch, self.feature_weight,
                                      self.feature_ramp_epochs)

    def extract_feat(self, inputs: Tensor, **kwargs) -> Tensor:
        """The student encoder on unmasked images (``out_type`` of the
        backbone, ``'raw'`` tokens by default)."""
        return self.backbone(inputs, mask=None)

    def update_teacher(self, epoch: int) -> None:
        """One EMA step at this epoch's decay (the first call copies)."""
        self.teacher.momentum = 1 - self.ema_decay(epoch)
        self.teacher.update_parameters(self.backbone)

    def loss(self, inputs: Tensor, data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """The BootMAE losses of one batch of images (B, C, H, W)."""
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError('BootMAE takes one view per image, got '
                                 f'{len(inputs)}')
            inputs = inputs[0]
        epoch = self.current_epoch()
        self.update_teacher(epoch)
        salience = None
        with torch.no_grad():
            target, last_input = self.teacher.module.forward_target(inputs)
            if getattr(self.backbone, 'needs_teacher_salience', False):
                salience = block_attention_salience(
                    self.teacher.module.layers[-1], last_input,
                    self.backbone.teacher_rows)
        latent, features, mask, ids_restore = self.backbone(
            inputs, salience=salience)
        pixels, feats = self.neck(latent, features, ids_restore, mask)
        return self.head.loss(pixels, feats, inputs, target.detach(), mask,
                              self.lambda_f(epoch))
