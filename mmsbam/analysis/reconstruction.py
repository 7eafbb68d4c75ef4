"""MAE reconstruction of images under a given masking, for pictures."""
from typing import Optional

import torch
from torch import Tensor, nn

from ..masking import MaskingResult

__all__ = ['mae_reconstruction']


@torch.no_grad()
def mae_reconstruction(model: nn.Module, x: Tensor,
                       masking: MaskingResult) -> Optional[Tensor]:
    """What an MAE-style model predicts for ``x`` under ``masking``, with the
    visible patches pasted back (as MAE's own pictures do).

    The backbone encodes with exactly this masking (its ``patch_tokens``
    and ``forward_encoder`` stages); with ``head.norm_pix`` the per-patch
    normalized prediction is mapped back with the target patch's mean and
    variance.

    Args:
        model (nn.Module): MAE-style model: ``backbone`` with
            ``patch_tokens``/``forward_encoder`` (e.g. ``SBAMViT``), a neck
            taking ``(latent, ids_restore)`` and a head with
            ``patchify``/``unpatchify``.
        x (Tensor): Normalized images (B, C, H, W).
        masking (MaskingResult): The masking of these B images.

    Returns:
        Tensor | None: (B, C, H, W) in the normalized space of ``x``, or
        None when the model is not MAE-style.
    """
    backbone = getattr(model, 'backbone', None)
    neck, head = getattr(model, 'neck', None), getattr(model, 'head', None)
    if not (hasattr(backbone, 'forward_encoder') and neck is not None
            and hasattr(head, 'patchify') and hasattr(head, 'unpatchify')):
        return None
    latent = backbone.forward_encoder(backbone.patch_tokens(x), masking)
    pred = neck(latent, masking.ids_restore).float()
    target = head.patchify(x.float())
    if getattr(head, 'norm_pix', False):
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    m = masking.mask.float().unsqueeze(-1)
    return head.unpatchify(pred * m + target * (1 - m))
