"""``CMAEViT``: MMPretrain's ``MAEViT`` with CMAE's cell masking and a
target-encoder forward (``shared/BOOTMAE_CMAE.md`` §2.1, §2.2)."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.models.selfsup.mae import MAEViT
from mmpretrain.registry import MODELS

__all__ = ['CMAEViT', 'expand_cells', 'pool_cells']


def expand_cells(cell_values: Tensor, grid: Tuple[int, int],
                 unit: int) -> Tensor:
    """(B, h*w) values of ``unit`` x ``unit`` cells -> (B, H*W) per patch,
    row-major on the (H, W) = (h*unit, w*unit) patch grid."""
    B = cell_values.shape[0]
    h, w = grid[0] // unit, grid[1] // unit
    out = cell_values.reshape(B, h, 1, w, 1).expand(B, h, unit, w, unit)
    return out.reshape(B, grid[0] * grid[1])


def pool_cells(patch_values: Tensor, grid: Tuple[int, int],
               unit: int) -> Tensor:
    """(B, H*W) values per patch -> (B, h*w) mean over each cell."""
    B = patch_values.shape[0]
    x = patch_values.reshape(B, 1, grid[0], grid[1])
    return F.avg_pool2d(x, unit).flatten(1)


@MODELS.register_module()
class CMAEViT(MAEViT):
    """Vision Transformer of CMAE's online and target encoders.

    ``MAEViT`` (fixed 2-D sin-cos position embedding, final norm ``ln1``)
    with CMAE's masking: a random ``mask_unit`` x ``mask_unit``-patch cell
    mask (official: 2 x 2 cells, keep ``int(C (1 - mask_ratio))`` of the
    ``C`` cells, 68 of 196 patches visible at 224 px); ``mask_unit=1`` is
    MAE's per-patch masking. Its state dict is the stock
    ``VisionTransformer``'s.

    Args:
        mask_ratio (float): Fraction of cells masked, in (0, 1).
            Defaults to 0.65 (CMAE).
        mask_unit (int): Cell side in patches; must divide the patch grid.
            Defaults to 2 (CMAE).
        *args, **kwargs: The other ``MAEViT`` arguments.
    """

    def __init__(self, *args, mask_ratio: float = 0.65, mask_unit: int = 2,
                 **kwargs) -> None:
        super().__init__(*args, mask_ratio=mask_ratio, **kwargs)
        name = type(self).__name__
        if isinstance(mask_unit, bool) or not isinstance(mask_unit, int) \
                or mask_unit < 1:
            raise ValueError(f'{name}: mask_unit must be an integer >= 1, '
                             f'got {mask_unit!r}')
        H, W = self.patch_resolution
        if H % mask_unit or W % mask_unit:
            raise ValueError(f'{name}: mask_unit={mask_unit} does not divide '
                             f'the {H}x{W} patch grid (img_size / '
                             'patch_size); CMAE needs an even grid')
        self.mask_unit = mask_unit
        self.cell_grid = (H // mask_unit, W // mask_unit)
        self.num_cells = self.cell_grid[0] * self.cell_grid[1]
        if isinstance(mask_ratio, bool) or not isinstance(
                mask_ratio, (int, float)) or not 0 < mask_ratio < 1 or int(
                    self.num_cells * (1 - mask_ratio)) < 1:
            raise ValueError(
                f'{name}: mask_ratio must be in (0, 1) and keep at least one '
                f'of the {self.num_cells} cells, got {mask_ratio!r}')

    def init_weights(self) -> None:
        """``MAEViT``'s init, then CMAE's: every Linear xavier-uniform with
        zero bias, LayerNorms 1 / 0 (``cmae_vit.py`` ``_init_weights``)."""
        super().init_weights()
        if isinstance(self.init_cfg, dict) and \
                self.init_cfg.get('type') == 'Pretrained':
            return
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def random_masking(self, x: Tensor, mask_ratio: float = 0.65
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        """CMAE's random cell masking of patch tokens ``x`` (B, L, D).

        Returns:
            tuple: ``(x_masked (B, K, D), mask (B, L) float 1 = masked,
            ids_restore (B, L))``, ``K = unit² int(C (1 - mask_ratio))``.
        """
        B = x.shape[0]
        keep = int(self.num_cells * (1 - mask_ratio))
        noise = torch.rand(B, self.num_cells, device=x.device)
        ids_keep = torch.argsort(noise, dim=1)[:, :keep]
        cell_mask = torch.ones(B, self.num_cells, device=x.device)
        cell_mask.scatter_(1, ids_keep, 0.0)
        return self.mask_cells(x, cell_mask)

    def mask_cells(self, x: Tensor, cell_mask: Tensor
                   ) -> Tuple[Tensor, Tensor, Tensor]:
        """Drop the patches of masked cells; ``cell_mask`` (B, C), 1 =
        masked, the same count in every image. Visible patches are kept in
        position order (the official code's order among them is that of an
        unstable sort; the encoder does not depend on it)."""
        B, L, D = x.shape
        mask = expand_cells(cell_mask.to(x.dtype), self.patch_resolution,
                            self.mask_unit).float()
        ids_shuffle = torch.argsort(mask, dim=1, stable=True)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        visible_cells = int(self.num_cells - cell_mask[0].sum().item())
        ids_keep = ids_shuffle[:, :visible_cells * self.mask_unit**2]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
        return x_masked, mask, ids_restore

    def forward_target(self, x: Tensor) -> Tensor:
        """CMAE's target encoder on unmasked images (B, C, H, W): class
        token + all patches through the blocks, **no** final norm, the mean
        of the patch tokens (B, D)."""
        return self.target_tokens(x)[0][:, 1:].mean(dim=1)

    def target_tokens(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Tokens (B, 1 + L, D) after the last block (no final norm), and
        that block's input, from which its attention is recomputed."""
        B = x.shape[0]
        x = self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(B, -1, -1), x), dim=1)
        x = self.drop_after_pos(x)
        for layer in self.layers[:-1]:
            x = layer(x)
        return self.layers[-1](x), x
