"""CMAE (Huang et al., TPAMI 2023) as an MMPretrain algorithm.

MMPretrain 1.2.0 has no CMAE; this follows the official mmengine code
(ZhichengHuang/CMAE ``e786a52``, summarised in ``shared/BOOTMAE_CMAE.md``
§2) and reuses MMPretrain's parts unchanged: ``MAEPretrainDecoder`` (pixel
and feature decoders), ``MAEPretrainHead`` (L_rc), ``NonLinearNeck``
(projector), ``MoCoV3Head`` (predictor + InfoNCE, L_ct) and ``CosineEMA``
(target encoder and projector).
"""
import math
from typing import List, Optional

import torch
from torch import Tensor, nn

from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...masking import block_attention_salience

__all__ = ['CMAE']


def _check_momentum(value: float, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 <= value < 1:
        raise ValueError(f'CMAE: {key} must be in [0, 1), got {value!r}')
    return float(value)


@MODELS.register_module()
class CMAE(BaseSelfSupervisor):
    """CMAE: MAE on an online view + contrast with a momentum target view.

    Inputs are the two views of ``MultiView``: ``inputs[0]`` the online view
    (masked, reconstructed, and the pixel target), ``inputs[1]`` the
    pixel-shifted, colour-augmented target view. Each ``loss`` call:

    1. EMA update of the target (``backbone`` + ``projector``), momentum
       ``base_momentum`` -> ``end_momentum`` on a cosine (official: 0.996
       constant); the first update copies the online weights.
    2. Key ``k`` = target projector(mean of the target encoder's patch
       tokens, no final norm) on the target view, without gradient; the
       target encoder runs in eval mode, the target projector's BN in the
       model's mode (batch statistics in training, as the official code).
    3. Online encoder on the masked online view -> ``neck`` (pixel decoder)
       -> ``head`` (MAE's norm-pixel L2 on masked patches): ``loss_rc``.
    4. ``feature_decoder`` -> mean over all L outputs -> ``projector`` ->
       ``contrastive_head`` (predictor, L2 normalisation, InfoNCE with
       the gathered keys as negatives, one direction): ``loss_ct``.

    Total = ``rc_weight`` L_rc + ``ct_weight`` L_ct (the runner sums them).

    Args:
        backbone (dict): ``CMAEViT`` (or ``SBAMCMAEViT``) config.
        neck (dict): Pixel decoder (``MAEPretrainDecoder``) config.
        head (dict): ``MAEPretrainHead`` config (L_rc).
        feature_decoder (dict): ``MAEPretrainDecoder`` whose output feeds
            the projector; its width must be the encoder's ``embed_dims``
            (official ViT-B/16: p²·3 = 768, the default output width).
        projector (dict): ``NonLinearNeck`` config (input width
            ``embed_dims``).
        contrastive_head (dict): ``MoCoV3Head`` config (predictor,
            temperature τ; CMAE's ``loss_weight`` is 2τ).
        base_momentum (float): Target momentum at the start, in [0, 1).
            Defaults to 0.996.
        end_momentum (float): Target momentum at the end. Defaults to 0.996
            (the official schedule is constant).
        rc_weight (float): Weight of L_rc. Defaults to 1.0.
        ct_weight (float): Weight of L_ct. Defaults to 1.0.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 feature_decoder: dict,
                 projector: dict,
                 contrastive_head: dict,
                 base_momentum: float = 0.996,
                 end_momentum: float = 0.996,
                 rc_weight: float = 1.0,
                 ct_weight: float = 1.0,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.feature_decoder = MODELS.build(feature_decoder)
        self.projector = MODELS.build(projector)
        self.contrastive_head = MODELS.build(contrastive_head)
        self._check_widths()
        base = _check_momentum(base_momentum, 'base_momentum')
        end = _check_momentum(end_momentum, 'end_momentum')
        for key, value in (('rc_weight', rc_weight), ('ct_weight',
                                                      ct_weight)):
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f'CMAE: {key} must be a finite number '
                                 f'>= 0, got {value!r}')
        self.rc_weight, self.ct_weight = float(rc_weight), float(ct_weight)
        # MMPretrain's convention: momentum = 1 - m
        self.teacher = CosineEMA(self._online(), momentum=1 - base,
                                 end_momentum=1 - end)
        target_backbone = self.teacher.module['backbone']
        if hasattr(target_backbone, 'masker'):
            del target_backbone.masker  # the target encoder never masks

    def _check_widths(self) -> None:
        """The projector and its EMA copy read both the feature decoder's
        output (online) and the target encoder's tokens: equal widths."""
        pred = getattr(self.feature_decoder, 'decoder_pred', None)
        width = getattr(pred, 'out_features', None)
        embed = self.backbone.embed_dims
        if width is not None and width != embed:
            raise ValueError(
                f'CMAE: the feature decoder outputs {width} channels but the '
                f'target encoder gives {embed}, and one projector (and its '
                'EMA copy) reads both; set feature_decoder.'
                f'predict_feature_dim={embed} (in ViT-B/16 RGB the default '
                'p*p*C = 768 equals embed_dims)')

    def _online(self) -> nn.ModuleDict:
        return nn.ModuleDict(dict(backbone=self.backbone,
                                  projector=self.projector))

    def train(self, mode: bool = True) -> 'CMAE':
        """The target encoder stays in eval mode (no drop path); the target
        projector follows ``mode`` (BN on batch statistics in training)."""
        super().train(mode)
        self.teacher.module['backbone'].eval()
        return self

    def extract_feat(self, inputs: Tensor, **kwargs) -> Tensor:
        """Online encoder features of unmasked images, as ``MAEViT``."""
        return self.backbone(inputs, mask=None)

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """``dict(loss_rc=..., loss_ct=...)`` of one two-view batch."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                'CMAE needs two views, the online and the target view '
                "(MultiView with num_views=[1, 1]); got "
                f'{type(inputs).__name__} of length {len(inputs)}')
        online, target_view = inputs
        self.teacher.update_parameters(self._online())
        target_backbone = self.teacher.module['backbone']
        target_projector = self.teacher.module['projector']
        with torch.no_grad():
            key = target_projector([target_backbone.forward_target(
                target_view)])[0]
        backbone_kwargs = {}
        masker = getattr(self.backbone, 'masker', None)
        if masker is not None and masker.salience_source == 'teacher':
            backbone_kwargs['salience'] = self.target_salience(online)
        latent, mask, ids_restore = self.backbone(online, **backbone_kwargs)
        pred = self.neck(latent, ids_restore)
        loss_rc = self.head.loss(pred, online, mask)
        features = self.feature_decoder(latent, ids_restore)  # (B, L, p²C)
        query = self.projector([features.mean(dim=1)])[0]
        loss_ct = self.contrastive_head.loss(query, key)
        return dict(loss_rc=self.rc_weight * loss_rc,
                    loss_ct=self.ct_weight * loss_ct)

    @torch.no_grad()
    def target_salience(self, online: Tensor) -> Tensor:
        """(B, L) salience of the online view's patches from the target
        encoder's last-block attention on the unmasked online view (SBAM's
        column sum; one extra forward of the target encoder)."""
        target_backbone = self.teacher.module['backbone']
        _, last_input = target_backbone.target_tokens(online)
        return block_attention_salience(target_backbone.layers[-1],
                                        last_input, rows='all')
