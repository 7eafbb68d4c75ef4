"""BootMAE's two decoders with feature injection.

Each decoder layer attends to itself, then cross-attends to encoder
features (the pixel decoder to block 0's output, the feature decoder to the
last block's output, both over the class token and the visible tokens),
then applies an MLP (``Decode_Block`` of the official
``models/modeling_pretrain_bootmae.py``). MMPretrain's attention classes do
not fit: its ``CrossMultiheadAttention`` takes keys of the query width, and
its ``MultiheadAttention`` needs ``dim % heads == 0``, while BootMAE runs 12
heads on the 512-d pixel decoder with an inner width of
``heads * (dim // heads) = 504``.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpretrain.models.utils import build_2d_sincos_position_embedding
from mmpretrain.registry import MODELS

__all__ = ['BootMAEAttention', 'BootMAEDecoderLayer', 'BootMAEDecoder',
           'BootMAENeck']


class BootMAEAttention(nn.Module):
    """Self- or cross-attention with BEiT's biases (``q_bias``, ``v_bias``,
    no key bias) and an inner width of ``num_heads * (dims // num_heads)``.

    Args:
        dims (int): Query (and output) width.
        num_heads (int): Heads.
        context_dims (int, optional): Width of the keys and values for
            cross-attention; None: self-attention (one fused ``qkv``).
    """

    def __init__(self, dims: int, num_heads: int,
                 context_dims: Optional[int] = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dims = dims // num_heads
        if self.head_dims < 1:
            raise ValueError(f'BootMAEAttention: num_heads={num_heads} '
                             f'exceeds the width {dims}')
        inner = num_heads * self.head_dims
        self.cross = context_dims is not None
        if self.cross:
            self.q = nn.Linear(dims, inner, bias=False)
            self.kv = nn.Linear(context_dims, 2 * inner, bias=False)
        else:
            self.qkv = nn.Linear(dims, 3 * inner, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(inner))
        self.v_bias = nn.Parameter(torch.zeros(inner))
        self.proj = nn.Linear(inner, dims)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """x (B, N, dims), context (B, M, context_dims) -> (B, N, dims)."""
        B, N, _ = x.shape
        zeros = torch.zeros_like(self.v_bias)
        if self.cross:
            q = F.linear(x, self.q.weight, self.q_bias)
            kv = F.linear(context, self.kv.weight,
                          torch.cat([zeros, self.v_bias]))
            k, v = kv.reshape(B, -1, 2, self.num_heads,
                              self.head_dims).permute(2, 0, 3, 1, 4)
            q = q.reshape(B, N, self.num_heads, -1).transpose(1, 2)
        else:
            qkv = F.linear(x, self.qkv.weight,
                           torch.cat([self.q_bias, zeros, self.v_bias]))
            q, k, v = qkv.reshape(B, N, 3, self.num_heads,
                                  self.head_dims).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale head_dims^-.5
        return self.proj(out.transpose(1, 2).reshape(B, N, -1))


class BootMAEDecoderLayer(nn.Module):
    """x += SelfAttn(norm1 x); x += CrossAttn(norm3 x, norm4 f);
    x += MLP(norm2 x) (no layer scale, no drop path, as BootMAE's
    decoders).

    Args:
        dims (int): Decoder width.
        context_dims (int): Width of the injected encoder features.
        num_heads (int): Heads of both attentions.
        mlp_ratio (float): MLP hidden width / ``dims``.
        eps (float): LayerNorm epsilon. Defaults to 1e-6.
    """

    def __init__(self, dims: int, context_dims: int, num_heads: int,
                 mlp_ratio: float = 4., eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dims, eps=eps)
        self.attn = BootMAEAttention(dims, num_heads)
        self.norm3 = nn.LayerNorm(dims, eps=eps)
        self.norm4 = nn.LayerNorm(context_dims, eps=eps)
        self.cross_attn = BootMAEAttention(dims, num_heads, context_dims)
        self.norm2 = nn.LayerNorm(dims, eps=eps)
        hidden = int(dims * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dims, hidden), nn.GELU(), nn.Linear(hidden, dims))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.cross_attn(self.norm3(x), self.norm4(context))
        return x + self.mlp(self.norm2(x))


@MODELS.register_module()
class BootMAEDecoder(BaseModule):
    """One BootMAE decoder: ``down`` projection of the latent, mask tokens
    with a fixed 2-D sin-cos position embedding **at masked positions
    only** (visible tokens get none, as in the official code), ``depth``
    :class:`BootMAEDecoderLayer` s injecting ``context``, a final norm, and
    the prediction head of the patch tokens.

    Args:
        embed_dim (int): Encoder width (latent and context).
        decoder_embed_dim (int): Decoder width.
        depth (int): Layers.
        num_heads (int): Heads.
        num_patches (int): Patch tokens L (a square grid).
        target (str): ``'pixel'``: ``ConvTranspose2d(dim -> in_chans,
            patch_size, patch_size)`` giving (B, C, H, W) images;
            ``'feature'``: ``Linear(dim -> embed_dim)`` giving (B, L, D).
        patch_size (int): Patch size (``'pixel'``).
        in_chans (int): Image channels (``'pixel'``).
        mlp_ratio (float): MLP ratio. Defaults to 4.
    """

    TARGETS = ('pixel', 'feature')

    def __init__(self,
                 embed_dim: int,
                 decoder_embed_dim: int,
                 depth: int,
                 num_heads: int,
                 num_patches: int,
                 target: str,
                 patch_size: int = 16,
                 in_chans: int = 3,
                 mlp_ratio: float = 4.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if target not in self.TARGETS:
            raise ValueError(f'BootMAEDecoder: target must be one of '
                             f'{self.TARGETS}, got {target!r}')
        grid = int(round(math.sqrt(num_patches)))
        if grid * grid != num_patches:
            raise ValueError('BootMAEDecoder: num_patches must be a square '
                             f'number, got {num_patches}')
        self.target, self.grid = target, grid
        self.down = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        # fixed, zero class row (official build_2d_sincos_position_embedding)
        self.register_buffer(
            'pos_embed', build_2d_sincos_position_embedding(
                grid, decoder_embed_dim, cls_token=True).float(),
            persistent=False)
        self.layers = nn.ModuleList([
            BootMAEDecoderLayer(decoder_embed_dim, embed_dim, num_heads,
                                mlp_ratio) for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        if target == 'pixel':
            self.head = nn.ConvTranspose2d(decoder_embed_dim, in_chans,
                                           patch_size, patch_size)
        else:
            self.head = nn.Linear(decoder_embed_dim, embed_dim)

    def init_weights(self) -> None:
        """The official initialisation: every Linear xavier-uniform (a fused
        ``qkv`` per third) with zero bias, LayerNorm 1/0, mask token
        trunc-normal(0.02) cut at +-0.02, the ConvTranspose2d head PyTorch's
        default (the official init pass misses it)."""
        super().init_weights()
        init_linear_and_norm(self)
        nn.init.trunc_normal_(self.mask_token, std=.02, a=-.02, b=.02)

    def forward(self, latent: Tensor, context: Tensor,
                ids_restore: Tensor, mask: Tensor) -> Tensor:
        """Predict the target of every patch.

        Args:
            latent (Tensor): (B, 1 + V, D) encoder output (class token
                first, then the visible tokens in keep order).
            context (Tensor): (B, 1 + V, D) encoder features to inject.
            ids_restore (Tensor): (B, L) rows of ``[visible, mask tokens]``
                in patch order.
            mask (Tensor): (B, L), 1 = masked.

        Returns:
            Tensor: (B, C, H, W) for ``'pixel'``, (B, L, D) for
            ``'feature'``.
        """
        x = self.down(latent)  # (B, 1 + V, d)
        B, L = ids_restore.shape
        d = x.shape[-1]
        tokens = torch.cat(
            [x[:, 1:], self.mask_token.to(x.dtype).expand(
                B, L + 1 - x.shape[1], -1)], dim=1)
        tokens = torch.gather(tokens, 1,
                              ids_restore.unsqueeze(-1).expand(-1, -1, d))
        m = mask.unsqueeze(-1).to(x.dtype)
        tokens = tokens + self.pos_embed[:, 1:].to(x.dtype) * m
        x = torch.cat([x[:, :1], tokens], dim=1)
        for layer in self.layers:
            x = layer(x, context)
        x = self.norm(x)[:, 1:]
        if self.target == 'feature':
            return self.head(x)
        x = x.transpose(1, 2).reshape(B, d, self.grid, self.grid)
        return self.head(x)


def xavier_linear(m: nn.Linear, per_third: bool = False) -> None:
    """Xavier-uniform weight (a fused q/k/v weight with the bound of one
    third, as MAE and BootMAE) and zero bias."""
    fan_out, fan_in = m.weight.shape
    if per_third:
        fan_out //= 3
    bound = math.sqrt(6. / (fan_out + fan_in))
    nn.init.uniform_(m.weight, -bound, bound)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def init_linear_and_norm(module: nn.Module) -> None:
    """BootMAE's initialisation pass: every Linear :func:`xavier_linear`
    (a fused ``qkv`` per third), every LayerNorm weight 1 and bias 0."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            xavier_linear(m, per_third=name.endswith('qkv'))
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@MODELS.register_module()
class BootMAENeck(BaseModule):
    """BootMAE's pixel decoder and feature decoder, configured together as
    in the official model (shared depth and heads).

    Example:
        >>> neck = dict(type='BootMAENeck', num_patches=196, patch_size=16,
        ...             in_chans=3, embed_dim=768, decoder_embed_dim=512,
        ...             decoder_depth=2, decoder_num_heads=12)

    Args:
        num_patches (int): Patch tokens L.
        patch_size (int): Patch size.
        in_chans (int): Image channels.
        embed_dim (int): Encoder width; the feature decoder's width.
        decoder_embed_dim (int): The pixel decoder's width.
        decoder_depth (int): Layers of each decoder. Defaults to 2.
        decoder_num_heads (int): Heads of each decoder. Defaults to 12.
        mlp_ratio (float): MLP ratio. Defaults to 4.
    """

    def __init__(self,
                 num_patches: int = 196,
                 patch_size: int = 16,
                 in_chans: int = 3,
                 embed_dim: int = 768,
                 decoder_embed_dim: int = 512,
                 decoder_depth: int = 2,
                 decoder_num_heads: int = 12,
                 mlp_ratio: float = 4.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        common = dict(embed_dim=embed_dim, depth=decoder_depth,
                      num_heads=decoder_num_heads, num_patches=num_patches,
                      mlp_ratio=mlp_ratio)
        self.pixel_decoder = BootMAEDecoder(
            decoder_embed_dim=decoder_embed_dim, target='pixel',
            patch_size=patch_size, in_chans=in_chans, **common)
        self.feature_decoder = BootMAEDecoder(
            decoder_embed_dim=embed_dim, target='feature', **common)

    def forward(self, latent: Tensor, features: Tuple[Tensor, Tensor],
                ids_restore: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        """(pixels (B, C, H, W), features (B, L, D)); ``features`` are the
        (low, high) encoder features the two decoders inject."""
        pixels = self.pixel_decoder(latent, features[0], ids_restore, mask)
        feats = self.feature_decoder(latent, features[1], ids_restore, mask)
        return pixels, feats
