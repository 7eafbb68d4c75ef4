"""``BootMAEViT``: MMPretrain's ``MAEViT`` with BootMAE's masks, the
encoder features the decoders inject, and the target forward of the EMA
encoder; ``SBAMBootMAEViT``: the same with SBAM masks.

Neither adds a parameter: checkpoints have the keys of a stock
``VisionTransformer``. The official encoder's BEiT-style ``q_bias`` /
``v_bias`` (no key bias) is the stock full ``qkv`` bias: a key bias adds
the same ``q . b`` to every logit of a query's row, which the softmax
cancels.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS

from ...masking import MaskingRecord, MaskingResult
from ...masking.generators import masking_from_mask
from ..image_checks import check_images
from ..sbam_backbone import SBAMBackboneMixin
from .bootmae_neck import init_linear_and_norm

__all__ = ['BootMAEViT', 'SBAMBootMAEViT']

Features = Tuple[Tensor, Tensor]


@MODELS.register_module()
class BootMAEViT(MAEViT):
    """ViT encoder of BootMAE.

    ``forward(x)`` masks with ``bootmae_mask_generator`` (exactly
    ``num_masked`` cells per image, which must equal MAE's count for
    ``mask_ratio``, ``L - int(L (1 - mask_ratio))``), encodes the class
    token + visible tokens and returns ``(latent, (f_low, f_high), mask,
    ids_restore)``; the features are the outputs of blocks
    ``feature_layers`` **before** the final norm.

    Args:
        feature_layers (Sequence[int]): Blocks whose outputs the pixel and
            the feature decoder inject (official ``fea_list=[0, 11]`` for
            ViT-B). Negative indices count from the end. Defaults to
            ``(0, -1)``.
        bootmae_mask_generator (dict): The mask generator. Defaults to
            ``dict(type='BootMAEMaskGenerator')`` (120 block + 27 random
            cells of 196).
        **kwargs: ``MAEViT`` arguments (``mask_ratio`` 0.75 by default).
    """

    def __init__(self,
                 *args,
                 feature_layers: Sequence[int] = (0, -1),
                 bootmae_mask_generator: dict = dict(
                     type='BootMAEMaskGenerator'),
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        n = len(self.layers)
        if len(feature_layers) != 2 or not all(
                -n <= int(i) < n for i in feature_layers):
            raise ValueError(f'{type(self).__name__}: feature_layers must be '
                             f'two block indices in [-{n}, {n - 1}], got '
                             f'{feature_layers!r}')
        self.feature_layers = tuple(int(i) % n for i in feature_layers)
        self.bootmae_mask_generator = MODELS.build(bootmae_mask_generator)
        L = self.num_patches
        expected = L - int(L * (1 - self.mask_ratio))
        if self.bootmae_mask_generator.num_masked != expected:
            raise ValueError(
                f'{type(self).__name__}: bootmae_mask_generator.num_masked='
                f'{self.bootmae_mask_generator.num_masked} but mask_ratio='
                f'{self.mask_ratio} masks {expected} of {L} tokens; make '
                'them agree (so that the SBAM twin masks as many)')
        self.bootmae_mask_generator.check_grid(L)
        projection = self.patch_embed.projection
        self.in_channels = projection.in_channels
        self.patch_size = projection.kernel_size[0]

    def init_weights(self) -> None:
        """``MAEViT``'s (sin-cos position embedding, xavier patch
        embedding), then the official rest: every Linear xavier-uniform
        (``qkv`` per third) with zero bias, LayerNorm 1/0, ``cls_token``
        normal(1e-6). A ``Pretrained`` ``init_cfg`` only loads."""
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            super(MAEViT, self).init_weights()
            return
        super().init_weights()
        init_linear_and_norm(self)
        nn.init.normal_(self.cls_token, std=1e-6)

    # -------------------------------------------------------------- stages
    def patch_tokens(self, x: Tensor) -> Tensor:
        """Patch embedding + position embedding (B, L, D), no class
        token."""
        return self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]

    def mask_tokens(self, tokens: Tensor,
                    salience: Optional[Tensor] = None) -> MaskingResult:
        """BootMAE's masks for the batch (``salience`` is for the SBAM
        twin and must be None here)."""
        if salience is not None:
            raise ValueError(f'{type(self).__name__} masks with BootMAE\'s '
                             'generator and takes no salience')
        h, w = self.patch_resolution
        mask = self.bootmae_mask_generator(tokens.shape[0], h, w,
                                           device=tokens.device)
        return masking_from_mask(mask.float())

    def forward_encoder(self, tokens: Tensor,
                        masking: MaskingResult) -> Tuple[Tensor, Features]:
        """Class token + visible tokens through the blocks.

        Returns:
            tuple: latent (B, 1 + V, D) after the final norm, and the
            outputs of blocks ``feature_layers`` (before the norm).
        """
        if masking.padded:
            raise ValueError(f'{type(self).__name__}: every image must keep '
                             'the same number of tokens')
        D = tokens.shape[-1]
        x = torch.gather(tokens, 1,
                         masking.ids_keep.unsqueeze(-1).expand(-1, -1, D))
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        features = {}
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.feature_layers:
                features[i] = x
        low, high = self.feature_layers
        return self.norm1(x), (features[low], features[high])

    def forward_target(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """The bootstrapped target (official ``get_feature``): the unmasked
        image through every block, **no final norm**.

        Returns:
            tuple: the last block's output on the patch tokens (B, L, D),
            and the last block's input (B, 1 + L, D), from which its
            attention (a teacher salience) is recomputed.
        """
        x = self.patch_embed(x)[0]
        cls_token = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls_token, x], dim=1) + self.pos_embed
        for layer in self.layers[:-1]:
            x = layer(x)
        last_input = x
        return self.layers[-1](x)[:, 1:], last_input

    def forward(self, x: Tensor, mask: Optional[bool] = True,
                salience: Optional[Tensor] = None):
        """Masked encoding for pre-training, or (``mask`` None/False) the
        stock ``MAEViT`` forward of the unmasked image.

        Args:
            x (Tensor): Images (B, C, H, W).
            mask (bool, optional): False/None: no masking.
            salience (Tensor, optional): (B, L) salience for the SBAM twin
                with ``salience_source='teacher'``.

        Returns:
            tuple: ``(latent, (f_low, f_high), mask, ids_restore)``.
        """
        if mask is None or mask is False:
            check_images(x, self.in_channels, check_finite=False,
                         name=type(self).__name__)
            return super().forward(x, mask=None)
        check_images(x, self.in_channels, self.img_size, self.patch_size,
                     check_finite=False, name=type(self).__name__)
        tokens = self.patch_tokens(x)
        masking = self.mask_tokens(tokens, salience)
        latent, features = self.forward_encoder(tokens, masking)
        return latent, features, masking.mask, masking.ids_restore


@MODELS.register_module()
class SBAMBootMAEViT(SBAMBackboneMixin, BootMAEViT):
    """``BootMAEViT`` whose masks are SBAM's: salience-based masking at
    ``mask_ratio`` (0.75: the same 147 of 196 tokens as BootMAE) instead of
    blocks + random cells + roll.

    Salience sources: ``'embedding'`` (the student's patch embeddings, as
    in the paper for MAE; default), ``'attention'`` (a student block), or
    ``'teacher'``: the EMA encoder's last-block attention on the unmasked
    image, which :class:`BootMAE` computes from the target forward it runs
    anyway and passes as ``salience``. While ``SBAMHook`` holds SBAM off
    (warm-up), BootMAE's own generator masks. AMR works with
    ``mode='batch'``; per-image AMR is refused at build time.

    Args:
        teacher_rows (str): With ``salience_source='teacher'``: ``'all'``
            (attention each patch receives from every token, SBAM's column
            sum) or ``'cls'`` (from the class token). Defaults to ``'all'``.
        **kwargs: ``BootMAEViT`` and :class:`SBAMBackboneMixin` arguments.
    """

    salience_sources = ('embedding', 'attention', 'teacher')
    supports_sample_amr = False
    sample_amr_obstacle = (
        'both BootMAE decoders cross-attend to the visible tokens of each '
        'image, so images with different visible counts would need key '
        'padding in every decoder cross-attention, which BootMAEDecoder '
        'does not implement')

    def __init__(self, *args, teacher_rows: str = 'all', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if teacher_rows not in ('all', 'cls'):
            raise ValueError("SBAMBootMAEViT: teacher_rows must be 'all' or "
                             f"'cls', got {teacher_rows!r}")
        self.teacher_rows = teacher_rows

    @property
    def needs_teacher_salience(self) -> bool:
        """Whether :class:`BootMAE` must pass the EMA encoder's salience."""
        return self.masker.salience_source == 'teacher'

    def replaces_masks(self) -> bool:
        """False for the EMA copy (all parameters frozen), which never
        masks: ``SBAMHook`` then ignores its masker."""
        return any(p.requires_grad for p in self.parameters())

    def mask_tokens(self, tokens: Tensor,
                    salience: Optional[Tensor] = None) -> MaskingResult:
        """SBAM masks, or BootMAE's during the warm-up (the salience is
        computed and recorded either way, so statistics compare)."""
        masker = self.masker
        if self.needs_teacher_salience and salience is None:
            raise ValueError("SBAMBootMAEViT: salience_source='teacher' "
                             'needs the salience of the EMA encoder '
                             '(BootMAE passes it)')
        if salience is None:
            salience = masker.salience(tokens, self.layers)
        if masker.sbam_enabled:
            return masker(tokens, salience=salience)
        masking = super().mask_tokens(tokens)
        ratio = masking.mask.mean(1)
        masker.last_masking = MaskingRecord(salience.detach(), masking,
                                            ratio, False)
        return masking
