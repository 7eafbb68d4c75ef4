"""SBAM for CAE: ``SBAMCAEPretrainViT`` (the backbone), ``SBAMCAE`` (the
algorithm, which tells the student from its momentum teacher) and
``SBAMCAENeck`` (mask tokens as many as the batch masks, for AMR)."""
from typing import Optional, Tuple

from torch import Tensor

from mmpretrain.models.necks import CAENeck
from mmpretrain.models.selfsup.cae import CAE, CAEPretrainViT
from mmpretrain.registry import MODELS

from .mask_token import SBAMMaskTokenMixin

__all__ = ['SBAMCAEPretrainViT', 'SBAMCAE', 'SBAMCAENeck']

#: Roles :class:`SBAMCAE` gives the two copies of the backbone config.
CAE_ROLES = ('student', 'teacher')


@MODELS.register_module()
class SBAMCAEPretrainViT(SBAMMaskTokenMixin, CAEPretrainViT):
    """MMPretrain's ``CAEPretrainViT`` whose pipeline masks are replaced by
    SBAM masks of the same per-image counts.

    CAE builds its momentum teacher from the same backbone config and calls
    it with the complement of the student's mask, after the student has
    rewritten that mask; the teacher must encode what it is given. Which
    copy is which is set by :class:`SBAMCAE` in ``cae_role``; a masked
    forward outside ``SBAMCAE`` is refused. CAE reshapes the visible tokens
    of the batch to one length, so every image must keep the same count:
    per-image AMR is refused at build time, ``mode='batch'`` works (with
    :class:`SBAMCAENeck`). Accepts every argument of ``CAEPretrainViT``
    plus ``masker`` and ``mask_unit`` (see :class:`SBAMMaskTokenMixin`).
    """

    per_image_counts = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: ``'student'`` (remasks) or ``'teacher'`` (encodes the mask it is
        #: given), set by :class:`SBAMCAE`; None outside it.
        self.cae_role: Optional[str] = None

    def replaces_masks(self) -> bool:
        """True for the student, False for the momentum teacher; refuses a
        copy that no :class:`SBAMCAE` has marked (e.g. under the stock
        ``CAE``, which cannot tell its teacher from its student)."""
        if self.cae_role not in CAE_ROLES:
            raise ValueError(
                'SBAMCAEPretrainViT masks only inside model type '
                "'SBAMCAE', which marks its student and its momentum "
                'teacher (both built from this backbone config; the teacher '
                "must encode the mask it is given): set model.type='SBAMCAE'"
                f' (got cae_role={self.cae_role!r})')
        return self.cae_role == 'student'


@MODELS.register_module()
class SBAMCAE(CAE):
    """MMPretrain's ``CAE`` for an SBAM backbone.

    Overrides ``__init__`` only: after the stock one has built the student
    (``backbone``) and the momentum teacher (``teacher``) from the same
    backbone config, it marks each copy's ``cae_role``, so the teacher never
    remasks, whatever its ``requires_grad`` (``init_weights`` freezes it,
    but may not have run). AMR changes the masked count from batch to
    batch, which the stock ``CAENeck`` (a fixed ``mask_tokens_num``) cannot
    take: with ``amr`` the neck must be :class:`SBAMCAENeck`.

    Example:
        >>> model = dict(type='SBAMCAE',
        ...              backbone=dict(type='SBAMCAEPretrainViT'),
        ...              neck=dict(type='SBAMCAENeck'))

    Args:
        Every argument of ``CAE``; ``backbone`` must be an
        ``SBAMCAEPretrainViT`` config.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for module, role in zip((self.backbone, self.teacher), CAE_ROLES):
            if not isinstance(module, SBAMCAEPretrainViT):
                raise ValueError(
                    "SBAMCAE: model.backbone.type must be 'SBAMCAEPretrainViT'"
                    f', got {type(module).__name__}')
            module.cae_role = role
        if self.backbone.masker.amr is not None and \
                not isinstance(self.neck, SBAMCAENeck):
            raise ValueError(
                'SBAMCAE: masker.amr changes the masked count from batch to '
                f'batch, which {type(self.neck).__name__} (a fixed '
                "mask_tokens_num) cannot take; set model.neck.type="
                "'SBAMCAENeck'")


@MODELS.register_module()
class SBAMCAENeck(CAENeck):
    """MMPretrain's ``CAENeck`` with one mask token per masked position of
    the batch.

    The stock neck expands ``mask_tokens_num`` mask tokens, fixed at build
    time to the pipeline's count; with AMR the count changes from batch to
    batch. This neck reads it from ``pos_embed_masked`` (one row per masked
    position) and otherwise runs the stock forward: same parameters, same
    outputs when the count is the stock one; ``mask_tokens_num`` is unused.
    """

    def forward(self, x_unmasked: Tensor, pos_embed_masked: Tensor,
                pos_embed_unmasked: Tensor) -> Tuple[Tensor, Tensor]:
        """``CAENeck.forward`` with ``pos_embed_masked.shape[1]`` mask
        tokens."""
        self.mask_token_num = pos_embed_masked.shape[1]
        return super().forward(x_unmasked, pos_embed_masked,
                               pos_embed_unmasked)
