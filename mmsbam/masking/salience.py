"""Token salience of SBAM (``SBAM.md`` section 1).

Salience is the *outgoing attention* of a token: how much attention all
tokens of the full, unmasked image pay to it. It is computed without
gradient and in float32 whatever the autocast state or the dtype of the
weights (a model cast to half precision), because ``X Xᵀ`` of a wide model
overflows float16.
"""
import math
from itertools import chain
from typing import Optional

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    'token_salience', 'attention_salience', 'block_attention_salience',
    'attention_logits', 'normalize_salience', 'validate_temperature',
    'float32_call'
]


def normalize_salience(salience: Tensor) -> Tensor:
    """Min-max normalise salience per image into ``[0, 1]``.

    An image whose tokens are all equally salient (``max == min``) gets zero
    everywhere, so masking degrades to random instead of dividing by zero.

    Args:
        salience (Tensor): Raw salience of shape (B, L).

    Returns:
        Tensor: Normalised salience of shape (B, L), float32, finite.
    """
    low = salience.amin(dim=1, keepdim=True)
    span = salience.amax(dim=1, keepdim=True) - low
    flat = ~(span > 0)  # also catches a NaN span
    normed = (salience - low) / torch.where(flat, torch.ones_like(span), span)
    normed = torch.where(flat, torch.zeros_like(normed), normed)
    return normed.clamp_(0.0, 1.0).nan_to_num_(0.0)


def float32_call(module: nn.Module, *inputs: Tensor) -> Tensor:
    """``module(*inputs)`` computed in float32.

    A module whose weights are half precision (``model.to(torch.bfloat16)``)
    runs on float32 copies of its floating parameters and buffers, so the
    salience is float32 whatever the model's dtype; a float32 module is
    called as it is. The inputs are cast to float32.
    """
    inputs = tuple(x.float() for x in inputs)
    state = dict(chain(module.named_parameters(), module.named_buffers()))
    if all(t.dtype == torch.float32 for t in state.values()
           if t.is_floating_point()):
        return module(*inputs)
    state = {name: t.float() if t.is_floating_point() else t
             for name, t in state.items()}
    return functional_call(module, state, inputs)


def _column_sum_of_softmax(logits: Tensor, finite: bool = False) -> Tensor:
    """``s_j = Σ_i softmax(logits, -1)_ij`` for logits of shape (..., L, L).

    Unless the caller knows the logits are ``finite``, infinities (only
    reachable for absurd inputs, |x| ~ 1e150 in float64) are clamped so that
    softmax stays defined instead of returning NaN.
    """
    if not finite and not bool(torch.isfinite(logits).all()):
        big = torch.finfo(logits.dtype).max
        logits = logits.nan_to_num(nan=0.0, posinf=big, neginf=-big)
    return logits.softmax(dim=-1).sum(dim=-2)


@torch.no_grad()
def token_salience(tokens: Tensor, temperature: float = 1.0) -> Tensor:
    """Normalised outgoing-attention salience from token embeddings.

    ``A = X Xᵀ / τ``, ``P = softmax(A, -1)``, ``s_j = Σ_i P_ij``, then min-max
    normalised per image.

    Args:
        tokens (Tensor): Patch tokens (patch embedding plus absolute position
            embedding, no class token) of shape (B, L, D), any float dtype.
        temperature (float): Softmax temperature ``τ > 0``. Defaults to 1.0.

    Returns:
        Tensor: Salience ``ŝ`` of shape (B, L), float32, in ``[0, 1]``.
    """
    if tokens.dim() != 3:
        raise ValueError('token_salience expects tokens of shape (B, L, D), '
                         f'got shape {tuple(tokens.shape)}')
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    with torch.autocast(tokens.device.type, enabled=False):
        x = tokens.detach().float()
        logits = torch.bmm(x, x.transpose(1, 2)) / temperature
        finite = bool(torch.isfinite(logits).all())  # the one device sync
        if not finite:
            # float32 overflow (|x| ~ 1e19): float64 is exact for any
            # float32/16 input, so redo the product there.
            x64 = tokens.detach().double()
            logits = torch.bmm(x64, x64.transpose(1, 2)) / temperature
        salience = _column_sum_of_softmax(logits, finite).float()
    return normalize_salience(salience)


@torch.no_grad()
def attention_salience(tokens: Tensor,
                       layers: nn.ModuleList,
                       layer_index: int = 0,
                       temperature: float = 1.0) -> Tensor:
    """Normalised salience from a real self-attention block of the encoder.

    Runs the blocks before ``layer_index`` on all L tokens, then forms that
    block's attention from its own LayerNorm (``ln1``) and qkv projection with
    ``1/sqrt(d)`` scaling, averages the heads and column-sums as in
    :func:`token_salience`. MMPretrain's ``MultiheadAttention`` never
    materialises its weights (it calls ``scaled_dot_product_attention``),
    hence this explicit computation. Everything runs in float32, also for
    a model cast to half precision (:func:`float32_call`).

    Args:
        tokens (Tensor): Patch tokens of shape (B, L, D).
        layers (nn.ModuleList): The encoder's ``TransformerEncoderLayer`` s.
        layer_index (int): Which block's attention to use. Defaults to 0.
        temperature (float): Extra softmax temperature. Defaults to 1.0.

    Returns:
        Tensor: Salience ``ŝ`` of shape (B, L), float32, in ``[0, 1]``.
    """
    if not 0 <= layer_index < len(layers):
        raise ValueError(f'salience_layer must be in [0, {len(layers) - 1}],'
                         f' got {layer_index}')
    with torch.autocast(tokens.device.type, enabled=False):
        x = tokens.detach().float()
        for layer in layers[:layer_index]:
            x = float32_call(layer, x)
        logits = attention_logits(layers[layer_index], x) / temperature
        probs_sum = _column_sum_of_softmax(logits)  # (B, heads, L)
        salience = probs_sum.mean(dim=1)
    return normalize_salience(salience)


def attention_logits(block: nn.Module, x: Tensor) -> Tensor:
    """``q kᵀ / sqrt(d)`` (B, heads, L, L) of an MMPretrain encoder block
    (``ln1`` + ``attn.qkv``) on its input ``x`` (B, L, D), in float32
    whatever the autocast state or the block's dtype."""
    attn = block.attn
    B, L, _ = x.shape
    with torch.autocast(x.device.type, enabled=False):
        h = float32_call(block.ln1, x.detach())
        qkv = float32_call(attn.qkv, h).reshape(B, L, 3, attn.num_heads,
                                                attn.head_dims)
        q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
        return q @ k.transpose(-2, -1) * attn.head_dims**-0.5


@torch.no_grad()
def block_attention_salience(block: nn.Module, x: Tensor, rows: str = 'all',
                             num_extra_tokens: int = 1) -> Tensor:
    """Normalized salience of the patch tokens from one block's attention.

    For a teacher that has just encoded the full image: ``x`` (B, E + N, D)
    is the input of ``block`` (its last layer, say), with ``E`` extra
    tokens (the class token) first. Heads are averaged; ``rows='all'`` sums
    the attention each patch receives from every token (SBAM's outgoing
    attention), ``rows='cls'`` takes the class token's row (AttMask).

    Returns:
        Tensor: ``ŝ`` of shape (B, N), float32, in ``[0, 1]``.
    """
    if rows not in ('all', 'cls'):
        raise ValueError(f"rows must be 'all' or 'cls', got {rows!r}")
    probs = attention_logits(block, x).softmax(dim=-1).mean(dim=1)
    E = num_extra_tokens
    received = probs[:, 0, E:] if rows == 'cls' else probs[:, :, E:].sum(1)
    return normalize_salience(received)


def validate_temperature(temperature: Optional[float]) -> float:
    """Check ``temperature`` at build time; return it as float. An infinite
    temperature would flatten every salience map to 0 (random masking)."""
    if isinstance(temperature, bool) or not isinstance(
            temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f'temperature must be a finite number > 0, got '
                         f'{temperature!r}')
    return float(temperature)
