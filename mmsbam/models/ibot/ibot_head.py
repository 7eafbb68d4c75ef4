"""``iBOTHead``: iBoT's self-distillation loss (class token + masked patches).

It holds the teacher centres and temperatures; the logits come from
:class:`~mmsbam.models.ibot.ibot_neck.iBOTNeck` run by the student and the teacher.
"""
import math
import numbers
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import BaseModule
from torch import Tensor

from mmpretrain.registry import MODELS

__all__ = ['iBOTHead']


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_count(low: int, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, numbers.Integral) or \
                isinstance(value, bool) or value < low:
            raise ValueError(f'{key} must be an integer >= {low}, got '
                             f'{value!r}')


def _check_positive(**values: float) -> None:
    for key, value in values.items():
        if not _is_real(value) or not 0 < value < math.inf:
            raise ValueError(f'{key} must be a finite number > 0, got '
                             f'{value!r}')


def _check_momentum(**values: float) -> None:
    for key, value in values.items():
        if not _is_real(value) or not 0 <= value <= 1:
            raise ValueError(f'{key} must be in [0, 1], got {value!r}')


def _check_weight(**values: float) -> None:
    for key, value in values.items():
        if not _is_real(value) or not 0 <= value < math.inf:
            raise ValueError(f'{key} must be a finite number >= 0, got '
                             f'{value!r}')


@MODELS.register_module()
class iBOTHead(BaseModule):
    """The iBoT loss: class-token distillation across views plus masked
    patch-token distillation within each global view.

    Rows are view-major: all B images of view 0, then view 1, and so on,
    global views first. With ng global and nl local views, teacher
    distribution ``P = softmax((t - center) / teacher_temp)`` (detached),
    student ``log softmax(s / student_temp)``, and ``CE(P, S) = sum_k -P log
    S`` averaged over images:

    - ``loss_cls = lambda1 * sum_{q < ng, v != q} CE(P_q, S_v)
      / (ng * (ng + nl) - ng)``;
    - ``loss_patch = lambda2 * sum_{q < ng} mean_b [sum_i m_bi CE_bi /
      max(sum_i m_bi, 1)] / ng``, i.e. the average over each image's masked
      patches, then the mean over all images (unmasked images count 0).

    Everything is computed in float32 (also under autocast). After the loss,
    with the old centres used in it, the centres move towards the batch means
    of the teacher logits (all-reduced over processes): ``center`` over the
    class-token rows, ``patch_center`` over all patches (masked or not).
    ``teacher_temp`` and ``teacher_patch_temp`` are plain attributes, set
    every epoch by ``iBOTTeacherTempHook``.

    Example:
        >>> head = iBOTHead(out_channels=16, patch_out_channels=16,
        ...                 num_local_crops=2)
        >>> B, N = 4, 9
        >>> losses = head.loss(torch.randn(4 * B, 16),
        ...                    torch.randn(2 * B, N, 16),
        ...                    torch.randn(2 * B, 16),
        ...                    torch.randn(2 * B, N, 16),
        ...                    torch.rand(2 * B, N) < 0.3)
        >>> sorted(losses)
        ['loss_cls', 'loss_patch']

    Args:
        out_channels (int): Class-token prototypes K. Defaults to 8192.
        patch_out_channels (int): Patch-token prototypes Kp. Defaults to
            8192.
        num_global_crops (int): ng, views the teacher sees. Defaults to 2.
        num_local_crops (int): nl, extra student-only views. Defaults to 0.
        student_temp (float): Student temperature. Defaults to 0.1.
        teacher_temp (float): Initial teacher class-token temperature.
            Defaults to 0.04.
        teacher_patch_temp (float): Initial teacher patch temperature.
            Defaults to 0.04.
        center_momentum (float): Momentum of ``center``. Defaults to 0.9.
        patch_center_momentum (float): Momentum of ``patch_center``.
            Defaults to 0.9.
        lambda1 (float): Weight of the class-token term. Defaults to 1.0.
        lambda2 (float): Weight of the patch term. Defaults to 1.0.
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 out_channels: int = 8192,
                 patch_out_channels: int = 8192,
                 num_global_crops: int = 2,
                 num_local_crops: int = 0,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.04,
                 teacher_patch_temp: float = 0.04,
                 center_momentum: float = 0.9,
                 patch_center_momentum: float = 0.9,
                 lambda1: float = 1.0,
                 lambda2: float = 1.0,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        _check_count(1, out_channels=out_channels,
                     patch_out_channels=patch_out_channels,
                     num_global_crops=num_global_crops)
        _check_count(0, num_local_crops=num_local_crops)
        if num_global_crops + num_local_crops < 2:
            raise ValueError(
                'the class-token term needs a second view: '
                'num_global_crops + num_local_crops must be >= 2, got '
                f'num_global_crops={num_global_crops} and '
                f'num_local_crops={num_local_crops}')
        _check_positive(
            student_temp=student_temp,
            teacher_temp=teacher_temp,
            teacher_patch_temp=teacher_patch_temp)
        _check_momentum(
            center_momentum=center_momentum,
            patch_center_momentum=patch_center_momentum)
        _check_weight(lambda1=lambda1, lambda2=lambda2)
        self.out_channels = out_channels
        self.patch_out_channels = patch_out_channels
        self.num_global_crops = num_global_crops
        self.num_local_crops = num_local_crops
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.teacher_patch_temp = teacher_patch_temp
        self.center_momentum = center_momentum
        self.patch_center_momentum = patch_center_momentum
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.register_buffer('center', torch.zeros(1, out_channels))
        self.register_buffer('patch_center',
                             torch.zeros(1, 1, patch_out_channels))

    def loss(self, student_cls: Tensor, student_patch: Tensor,
             teacher_cls: Tensor, teacher_patch: Tensor,
             masks: Tensor) -> Dict[str, Tensor]:
        """Compute both loss terms, then update the centres.

        Args:
            student_cls (Tensor): ((ng + nl) * B, K) student class logits.
            student_patch (Tensor): (ng * B, N, Kp) student patch logits of
                the (masked) global views.
            teacher_cls (Tensor): (ng * B, K) teacher class logits.
            teacher_patch (Tensor): (ng * B, N, Kp) teacher patch logits of
                the unmasked global views.
            masks (Tensor): (ng * B, N) bool, True = masked; (ng * B, H, W)
                with H * W = N is flattened.

        Returns:
            dict[str, Tensor]: float32 scalars ``loss_cls`` and
            ``loss_patch``.
        """
        masks = masks.flatten(1) if masks.dim() > 2 else masks
        self._check_shapes(student_cls, student_patch, teacher_cls,
                           teacher_patch, masks)
        with torch.autocast(student_cls.device.type, enabled=False):
            loss_cls = self._cls_term(student_cls.float(), teacher_cls.float())
            loss_patch = self._patch_term(student_patch.float(),
                                          teacher_patch.float(), masks)
        self.update_centers(teacher_cls, teacher_patch)
        return dict(
            loss_cls=self.lambda1 * loss_cls,
            loss_patch=self.lambda2 * loss_patch)

    def _cls_term(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Cross-view class-token term, before lambda1."""
        ng = self.num_global_crops
        views = ng + self.num_local_crops
        batch = teacher.shape[0] // ng
        with torch.no_grad():
            p = F.softmax((teacher - self.center) / self.teacher_temp, dim=-1)
        log_s = F.log_softmax(student / self.student_temp, dim=-1)
        p = p.view(ng, batch, -1)
        log_s = log_s.view(views, batch, -1)
        # pair_ce[q, v] = CE(P_q, S_v) averaged over the B images.
        pair_ce = -torch.einsum('qbk,vbk->qv', p, log_s) / batch
        same_view = torch.eye(ng, views, dtype=torch.bool,
                              device=pair_ce.device)
        total = pair_ce.masked_fill(same_view, 0).sum()
        return total / (ng * views - ng)

    def _patch_term(self, student: Tensor, teacher: Tensor,
                    masks: Tensor) -> Tensor:
        """Masked-patch term, before lambda2."""
        with torch.no_grad():
            p = F.softmax(
                (teacher - self.patch_center) / self.teacher_patch_temp,
                dim=-1)
        log_s = F.log_softmax(student / self.student_temp, dim=-1)
        ce = -(p * log_s).sum(-1)  # (ng * B, N)
        weight = masks.to(ce.dtype)
        per_image = (ce * weight).sum(-1) / weight.sum(-1).clamp(min=1.0)
        # Mean over the B images of each view, summed over views, / ng: the
        # mean over all ng * B rows.
        return per_image.mean()

    @torch.no_grad()
    def update_centers(self, teacher_cls: Tensor,
                       teacher_patch: Tensor) -> None:
        """Move the centres towards the teacher's batch means.

        ``center <- m c + (1 - m) mean_rows(teacher_cls)`` and ``patch_center
        <- m2 c2 + (1 - m2) mean_rows(mean_patches(teacher_patch))``; the row
        sums are all-reduced and divided by rows x world size.

        Args:
            teacher_cls (Tensor): (R, K) teacher class logits.
            teacher_patch (Tensor): (R, N, Kp) teacher patch logits.
        """
        rows = teacher_cls.shape[0] * get_world_size()
        cls_sum = teacher_cls.float().sum(0, keepdim=True)
        all_reduce(cls_sum)
        patch_sum = teacher_patch.float().mean(1).sum(0, keepdim=True)
        all_reduce(patch_sum)
        m, m2 = self.center_momentum, self.patch_center_momentum
        self.center.mul_(m).add_(cls_sum / rows, alpha=1 - m)
        self.patch_center.mul_(m2).add_(
            patch_sum.unsqueeze(0) / rows, alpha=1 - m2)

    def _check_shapes(self, student_cls: Tensor, student_patch: Tensor,
                      teacher_cls: Tensor, teacher_patch: Tensor,
                      masks: Tensor) -> None:
        ng = self.num_global_crops
        views = ng + self.num_local_crops
        if teacher_cls.dim() != 2 or teacher_patch.dim() != 3:
            raise ValueError(
                'teacher_cls should be (ng * B, K) and teacher_patch '
                f'(ng * B, N, Kp), got {tuple(teacher_cls.shape)} and '
                f'{tuple(teacher_patch.shape)}')
        rows, k = teacher_cls.shape
        if rows % ng:
            raise ValueError(f'teacher_cls has {rows} rows, not a multiple '
                             f'of num_global_crops={ng}')
        batch = rows // ng
        n, kp = teacher_patch.shape[1], teacher_patch.shape[2]
        expected = dict(
            student_cls=(views * batch, k),
            student_patch=(rows, n, kp),
            teacher_patch=(rows, n, kp),
            masks=(rows, n))
        given = dict(
            student_cls=student_cls,
            student_patch=student_patch,
            teacher_patch=teacher_patch,
            masks=masks)
        for key, shape in expected.items():
            if tuple(given[key].shape) != shape:
                raise ValueError(
                    f'{key} should have shape {shape} for B={batch}, '
                    f'num_global_crops={ng}, num_local_crops='
                    f'{self.num_local_crops}, got {tuple(given[key].shape)}')
        if k != self.out_channels or kp != self.patch_out_channels:
            raise ValueError(
                f'logits have K={k}, Kp={kp}; expected out_channels='
                f'{self.out_channels}, patch_out_channels='
                f'{self.patch_out_channels}')
