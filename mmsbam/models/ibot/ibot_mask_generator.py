"""``iBOTSalienceMaskGenerator``: SBAM for iBoT, by one config line.

Replaces iBoT's blockwise masks with salience-based masks of the same
number of tokens per image: iBoT's per-image ratio policy (about half the
images unmasked, the others at U(0.1, 0.5)) or AMR decides how many, the
salience decides which.
"""
from typing import Optional, Sequence, Union

import torch
from mmengine.logging import MessageHub
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from ...masking import SalienceMasker, block_attention_salience
from ...masking.amr import DEFAULT_DELTA, DEFAULT_RATIO_VAR, check_amr_args
from ...masking.blockwise import iBOTBlockMaskGenerator

__all__ = ['iBOTSalienceMaskGenerator']

Floats = Union[float, Sequence[float]]


@MODELS.register_module()
class iBOTSalienceMaskGenerator(nn.Module):
    """Salience-based masks for :class:`~mmsbam.models.iBOT`.

    Example:
        >>> model = dict(mask_generator=dict(
        ...     type='iBOTSalienceMaskGenerator', salience_source='teacher'))

    Args:
        salience_source (str): ``'teacher'`` (the teacher's last-block
            attention on the unmasked global crop, recomputed from the
            block's input that the teacher forward kept: no second forward)
            or ``'embedding'`` (the student's patch embeddings, as for MAE).
            Defaults to ``'teacher'``.
        teacher_rows (str): ``'all'``: attention each patch receives from
            every token, SBAM's column sum; ``'cls'``: from the class token
            only, as AttMask. Defaults to ``'all'``.
        noise_scale (float): SBM noise width. Defaults to 0.5.
        temperature (float): Temperature of the ``'embedding'`` salience.
            Defaults to 1.0.
        pred_ratio, pred_ratio_var, pred_start_epoch: iBoT's ratio policy,
            as :class:`~mmsbam.masking.blockwise.iBOTBlockMaskGenerator`.
        amr (dict, optional): Adaptive ratios instead of iBoT's policy:
            ``dict(base_ratio=0.3, ratio_var=0.2, delta=0.2)``; each image is
            masked with probability ``masking_prob``. Defaults to None.
        masking_prob (float): See ``amr``. Defaults to 0.5.
    """

    needs_model = True  # iBOT passes the images, student and teacher block

    def __init__(self,
                 salience_source: str = 'teacher',
                 teacher_rows: str = 'all',
                 noise_scale: float = 0.5,
                 temperature: float = 1.0,
                 pred_ratio: Floats = (0.0, 0.3),
                 pred_ratio_var: Floats = (0.0, 0.2),
                 pred_start_epoch: int = 0,
                 amr: Optional[dict] = None,
                 masking_prob: float = 0.5) -> None:
        super().__init__()
        if salience_source not in ('teacher', 'embedding'):
            raise ValueError("salience_source must be 'teacher' or "
                             f"'embedding', got {salience_source!r}")
        if teacher_rows not in ('all', 'cls'):
            raise ValueError("teacher_rows must be 'all' or 'cls', got "
                             f'{teacher_rows!r}')
        if isinstance(masking_prob, bool) or not isinstance(
                masking_prob, (int, float)) or not 0 <= masking_prob <= 1:
            raise ValueError('masking_prob must be in [0, 1], got '
                             f'{masking_prob!r}')
        self.teacher_rows = teacher_rows
        self.masking_prob = float(masking_prob)
        self.ratio_policy = iBOTBlockMaskGenerator(
            pred_ratio=pred_ratio, pred_ratio_var=pred_ratio_var,
            pred_start_epoch=pred_start_epoch)
        if amr is not None and not isinstance(amr, dict):
            raise TypeError('amr must be None or a dict(base_ratio=..., '
                            f'ratio_var=..., delta=...), got {amr!r}')
        amr = None if amr is None else dict(amr)
        base_ratio = amr.pop('base_ratio', 0.3) if amr else 0.3
        if amr is not None:  # named as this generator's keys
            check_amr_args(base_ratio, amr.get('ratio_var', DEFAULT_RATIO_VAR),
                           amr.get('delta', DEFAULT_DELTA),
                           amr.get('mode', 'sample'),
                           base_name='amr.base_ratio')
        self.masker = SalienceMasker(
            mask_ratio=base_ratio, salience_source=salience_source,
            temperature=temperature, noise_scale=noise_scale, amr=amr)

    @property
    def pred_start_epoch(self) -> int:
        """Epochs without masks at the start (the ratio policy's)."""
        return self.ratio_policy.pred_start_epoch

    def ratios(self, salience: Tensor) -> Tensor:
        """(B,) ratio per image, 0 for an unmasked image."""
        B = salience.shape[0]
        epoch = MessageHub.get_current_instance().get_info('epoch', 0)
        if epoch < self.pred_start_epoch:
            return salience.new_zeros(B)
        if self.masker.amr is None:
            return salience.new_tensor(
                [self.ratio_policy.ratio() for _ in range(B)])
        chosen = torch.rand(B, device=salience.device) < self.masking_prob
        return self.masker.amr(salience) * chosen

    @torch.no_grad()
    def forward(self, images: Tensor, student: nn.Module,
                teacher_block: nn.Module, teacher_input: Tensor) -> Tensor:
        """(B, N) bool masks, True = masked, for the global crops ``images``.

        Args:
            images (Tensor): Global crops (B, C, H, W).
            student (nn.Module): The student ``iBOTViT`` (``'embedding'``).
            teacher_block (nn.Module): The teacher's last encoder block.
            teacher_input (Tensor): That block's input (B, 1 + N, C).
        """
        if self.masker.salience_source == 'teacher':
            salience = block_attention_salience(teacher_block, teacher_input,
                                                self.teacher_rows)
        else:
            salience = self.masker.salience(student.patch_tokens(images))
        masking = self.masker(salience=salience, ratio=self.ratios(salience))
        return masking.mask.bool()
