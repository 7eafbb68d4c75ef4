"""iBoT (Zhou et al., ICLR 2022) as MMPretrain components: ``iBOTViT`` and
the ``iBOT`` algorithm. MMPretrain 1.2.0 has no iBoT; this follows the
official implementation (``shared/IBOT.md``). The neck, the loss head, the
block mask generator, the temperature hook and the optimizer wrapper live
in their own modules.
"""
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpretrain.models.backbones import VisionTransformer
from mmpretrain.models.selfsup.base import BaseSelfSupervisor
from mmpretrain.models.utils import CosineEMA, resize_pos_embed
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

__all__ = ['iBOTViT', 'iBOT', 'ibot_backbone_state']


@MODELS.register_module()
class iBOTViT(VisionTransformer):
    """Vision Transformer with iBoT's mask token.

    The stock ``VisionTransformer`` plus ``mask_token`` (zeros, as iBoT
    initialises it): at masked positions the patch embedding is replaced by
    the mask token before the position embedding is added. Its checkpoint
    keys are the stock ViT's plus ``mask_token``. ``forward`` returns the
    raw tokens (B, 1 + N, C) after the final norm.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.num_extra_tokens != 1:
            raise ValueError('iBOTViT needs the class token (with_cls_token='
                             'True) and no other extra token')
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def forward_tokens(self, x: Tensor, mask: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor]:
        """Encode images (B, C, H, W), masked where ``mask`` (B, N) is True.

        Returns:
            tuple: the tokens (B, 1 + N, C) after the final norm, and the
            input of the last block (B, 1 + N, C), from which a teacher's
            attention is recomputed without a second forward.
        """
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)  # (B, N, C)
        if mask is not None:
            # a blend, not an in-place write: keeps mask_token in the graph
            m = mask.reshape(B, -1, 1).to(x.dtype)
            x = x * (1 - m) + self.mask_token.to(x.dtype) * m
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed, self.patch_resolution, patch_resolution,
            mode=self.interpolate_mode, num_extra_tokens=1)
        x = self.pre_norm(self.drop_after_pos(x))
        for layer in self.layers[:-1]:
            x = layer(x)
        last_input = x
        x = self.layers[-1](x)
        if self.final_norm:
            x = self.ln1(x)
        return x, last_input

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Tokens (B, 1 + N, C) of images ``x``, masked where ``mask``."""
        return self.forward_tokens(x, mask)[0]

    def patch_tokens(self, x: Tensor) -> Tensor:
        """Patch embedding plus position embedding (B, N, C), no class
        token: what the ``embedding`` salience scores."""
        x, patch_resolution = self.patch_embed(x)
        pos = resize_pos_embed(self.pos_embed, self.patch_resolution,
                               patch_resolution, mode=self.interpolate_mode,
                               num_extra_tokens=1)
        return x + pos[:, 1:]


@MODELS.register_module()
class iBOT(BaseSelfSupervisor):
    """iBoT: [CLS] and masked-patch self-distillation from an EMA teacher.

    Inputs are the views of ``MultiView`` (``num_global_crops`` global
    crops, then local crops). Each ``loss`` call: EMA update of the teacher
    (``backbone`` + ``neck``, cosine momentum ``teacher_momentum`` -> 1);
    teacher on the unmasked global crops; masks from ``mask_generator``
    (iBoT's blockwise masks, or ``iBOTSalienceMaskGenerator`` for SBAM);
    student on the masked global crops and the unmasked local crops; the
    loss of ``head``.

    Example:
        >>> model = dict(type='iBOT', backbone=dict(type='iBOTViT', ...),
        ...              neck=dict(type='iBOTNeck', ...),
        ...              head=dict(type='iBOTHead', ...),
        ...              mask_generator=dict(type='iBOTBlockMaskGenerator'))

    Args:
        backbone (dict): ``iBOTViT`` config.
        neck (dict): ``iBOTNeck`` config.
        head (dict): ``iBOTHead`` config (its ``num_global_crops`` splits
            the views).
        mask_generator (dict): Mask generator config. Defaults to
            ``dict(type='iBOTBlockMaskGenerator')``.
        teacher_momentum (float): Teacher EMA momentum at the start, in
            [0, 1); it rises to 1 on a cosine (MMPretrain's ``CosineEMA``
            takes ``1 - teacher_momentum``). Defaults to 0.996.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 mask_generator: dict = dict(type='iBOTBlockMaskGenerator'),
                 teacher_momentum: float = 0.996,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if isinstance(teacher_momentum, bool) or not isinstance(
                teacher_momentum, (int, float)) or \
                not 0 <= teacher_momentum < 1:
            raise ValueError('teacher_momentum must be in [0, 1), got '
                             f'{teacher_momentum!r}')
        self.mask_generator = MODELS.build(mask_generator)
        self.teacher = CosineEMA(
            nn.Sequential(self.backbone, self.neck),
            momentum=1 - teacher_momentum, end_momentum=0.)

    def train(self, mode: bool = True) -> 'iBOT':
        """The teacher stays in eval mode (no drop path) whatever ``mode``."""
        super().train(mode)
        self.teacher.eval()
        return self

    def extract_feat(self, inputs: Tensor, **kwargs) -> Tensor:
        """The class token (B, C) of the student backbone."""
        return self.backbone(inputs)[:, 0]

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> dict:
        """The iBoT loss of one multi-crop batch."""
        ng = self.head.num_global_crops
        if not isinstance(inputs, (list, tuple)) or len(inputs) < ng:
            raise ValueError(f'iBOT needs at least {ng} views (MultiView), '
                             f'got {type(inputs).__name__}')
        self.teacher.update_parameters(nn.Sequential(self.backbone, self.neck))
        globals_ = torch.cat(inputs[:ng])  # (ng B, C, H, W), view-major
        teacher_backbone, teacher_neck = self.teacher.module
        with torch.no_grad():
            tokens, last_input = teacher_backbone.forward_tokens(globals_)
            teacher_cls, teacher_patch = teacher_neck(tokens)
        masks = self.generate_masks(globals_, teacher_backbone, last_input)
        student_cls, student_patch = self.neck(self.backbone(globals_, masks))
        if len(inputs) > ng:
            local_cls, _ = self.neck(
                self.backbone(torch.cat(inputs[ng:])), patch_tokens=False)
            student_cls = torch.cat([student_cls, local_cls])
        return self.head.loss(student_cls, student_patch, teacher_cls,
                              teacher_patch, masks)

    @torch.no_grad()
    def generate_masks(self, images: Tensor, teacher_backbone: BaseModule,
                       last_input: Tensor) -> Tensor:
        """(ng B, N) bool masks, True = masked, of the global crops."""
        generator = self.mask_generator
        if getattr(generator, 'needs_model', False):  # salience-based
            return generator(images=images, student=self.backbone,
                             teacher_block=teacher_backbone.layers[-1],
                             teacher_input=last_input)
        H = images.shape[-2] // self.backbone.patch_embed.projection.stride[0]
        W = images.shape[-1] // self.backbone.patch_embed.projection.stride[1]
        return generator(images.shape[0], H, W,
                         device=images.device).flatten(1)


def ibot_backbone_state(state_dict: Dict[str, Tensor],
                        source: str = 'teacher') -> Dict[str, Tensor]:
    """The ``backbone.*`` weights of an iBOT checkpoint's teacher (what
    iBoT evaluates) or student, without ``mask_token``: a state dict that a
    stock ``VisionTransformer`` loads (``init_cfg=dict(type='Pretrained',
    prefix='backbone.')``) and an iBOT model loads as its backbone.

    Args:
        state_dict (dict): ``checkpoint['state_dict']`` of an iBOT run.
        source (str): ``'teacher'`` (``teacher.module.0.*``) or
            ``'student'`` (``backbone.*``). Defaults to ``'teacher'``.
    """
    prefixes = dict(teacher='teacher.module.0.', student='backbone.')
    if source not in prefixes:
        raise ValueError(f"source must be 'teacher' or 'student', got "
                         f'{source!r}')
    prefix = prefixes[source]
    out = {'backbone.' + k[len(prefix):]: v for k, v in state_dict.items()
           if k.startswith(prefix) and not k.endswith('mask_token')}
    if not out:
        raise ValueError(f'no {prefix}* key in the checkpoint: not an iBOT '
                         f'checkpoint (keys start {sorted(state_dict)[:3]})')
    return out
