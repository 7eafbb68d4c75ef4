"""Shared fixtures for the mmsbam unit tests.

Everything here is tiny (embed_dims 32, 2 layers, 4 heads, 32x32 images,
4x4 patches -> L = 64) so the whole suite runs in seconds on a CPU.

The reference implementations below are written from ``SBAM.md`` with
numpy / plain torch ops; they share no code with :mod:`mmsbam`.
"""
import copy
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmpretrain.utils import register_all_modules

# Import every MMPretrain module into the registry without touching the
# global default scope (other test files build Runners of their own).
register_all_modules(init_default_scope=False)

import mmsbam  # noqa: E402,F401  (registers SBAMViT & co., patches torch.load)
from mmpretrain.registry import MODELS  # noqa: E402

TINY_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
IMG_SIZE = 32
PATCH_SIZE = 4
NUM_PATCHES = (IMG_SIZE // PATCH_SIZE)**2  # 64


def _backbone_cfg(type_='SBAMViT', in_channels=1, **kwargs):
    cfg = dict(
        type=type_,
        arch=copy.deepcopy(TINY_ARCH),
        img_size=IMG_SIZE,
        patch_size=PATCH_SIZE,
        mask_ratio=0.75,
        patch_cfg=dict(in_channels=in_channels))
    cfg.update(kwargs)
    return cfg


def _mae_cfg(in_channels=1, **backbone_kwargs):
    return dict(
        type='MAE',
        backbone=_backbone_cfg(in_channels=in_channels, **backbone_kwargs),
        neck=dict(
            type='MAEPretrainDecoder',
            num_patches=NUM_PATCHES,
            patch_size=PATCH_SIZE,
            in_chans=in_channels,
            embed_dim=32,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=4),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=PATCH_SIZE,
            in_channels=in_channels,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')))


def _build(cfg, seed):
    """Build and initialise with a fixed seed (construction draws random
    numbers too, e.g. for parameters init_weights leaves alone)."""
    torch.manual_seed(seed)
    module = MODELS.build(cfg)
    module.init_weights()
    module.eval()
    return module


@pytest.fixture
def backbone_cfg():
    """``backbone_cfg(type_='SBAMViT', in_channels=1, **kwargs) -> dict``."""
    return _backbone_cfg


@pytest.fixture
def build_backbone():
    """Factory: a tiny, initialised backbone in eval mode.

    ``build_backbone(type_='SBAMViT', in_channels=1, seed=0, **kwargs)``;
    ``type_`` may also be ``'MAEViT'`` or ``'VisionTransformer'`` (stock).
    """

    def factory(type_='SBAMViT', in_channels=1, seed=0, **kwargs):
        cfg = _backbone_cfg(type_, in_channels, **kwargs)
        if type_ == 'VisionTransformer':  # has no masking
            cfg.pop('mask_ratio')
        return _build(cfg, seed)

    return factory


@pytest.fixture
def build_mae():
    """Factory: a tiny MAE (SBAMViT + stock decoder and head), eval mode.

    ``build_mae(in_channels=1, seed=0, **sbamvit_kwargs)``.
    """

    def factory(in_channels=1, seed=0, **backbone_kwargs):
        return _build(_mae_cfg(in_channels, **backbone_kwargs), seed)

    return factory


def _np_token_salience(tokens, temperature=1.0):
    """SBAM.md section 1 in float64 numpy, straight from the formulas."""
    x = np.asarray(tokens, dtype=np.float64)
    logits = x @ np.swapaxes(x, 1, 2) / temperature
    logits = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(logits)
    p = p / p.sum(axis=-1, keepdims=True)
    s = p.sum(axis=-2)  # s_j = sum_i P_ij
    return _np_minmax(s)


def _np_minmax(s):
    s = np.asarray(s, dtype=np.float64)
    low = s.min(axis=1, keepdims=True)
    span = s.max(axis=1, keepdims=True) - low
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (s - low) / safe, 0.0)


@torch.no_grad()
def _ref_attention_salience(tokens, layers, layer_index=0, temperature=1.0):
    """Attention salience from block ``layer_index``'s ``ln1`` and ``qkv``.

    Written with explicit weight products: LayerNorm(x) @ W_qkv^T + b, q/k
    split as [q | k | v] x heads (the layout of MMPretrain's
    ``MultiheadAttention``, checked against its forward in
    ``test_salience.py``), softmax(q k^T / sqrt(head_dim) / tau), column
    sum, mean over heads, min-max per image.
    """
    x = tokens.detach().float()
    for layer in layers[:layer_index]:
        x = layer(x)
    block = layers[layer_index]
    B, L, D = x.shape
    heads = block.attn.num_heads
    hd = D // heads
    ln = block.ln1
    h = F.layer_norm(x, (D, ), ln.weight, ln.bias, ln.eps)
    qkv = h @ block.attn.qkv.weight.t() + block.attn.qkv.bias
    q = qkv[..., :D].reshape(B, L, heads, hd).permute(0, 2, 1, 3)
    k = qkv[..., D:2 * D].reshape(B, L, heads, hd).permute(0, 2, 1, 3)
    logits = q @ k.transpose(-2, -1) / math.sqrt(hd) / temperature
    s = logits.double().softmax(-1).sum(-2).mean(1)  # (B, L)
    return torch.from_numpy(_np_minmax(s.numpy()))


@pytest.fixture
def np_token_salience():
    """Reference ``ŝ`` from token embeddings (numpy float64)."""
    return _np_token_salience


@pytest.fixture
def np_minmax():
    return _np_minmax


@pytest.fixture
def ref_attention_salience():
    """Reference ``ŝ`` from a block's own attention weights (float64)."""
    return _ref_attention_salience


# ------------------------------------------------------------------ tools
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _run_tool(script, *args, check=True, timeout=600, env=None):
    """Run ``script`` (``tools/...py`` with this Python, ``.sh`` with bash)
    from the repository root, as a user does, once; returns the
    ``CompletedProcess`` (stdout and stderr together in ``.stdout``).
    ``check`` fails the test with the end of the output on a non-zero
    exit status."""
    runner = ['bash'] if script.endswith('.sh') else [sys.executable]
    proc = subprocess.run(
        [*runner, script, *map(str, args)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
        env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f'{script} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-6000:]}')
    return proc


@pytest.fixture(scope='session')
def fashion_mnist():
    """Fail (not skip) without the data: tools/install.sh prepares it."""
    if not osp.isfile(
            osp.join(ROOT, 'data/fashion_mnist/t10k-labels-idx1-ubyte')):
        pytest.fail('data/fashion_mnist is missing: run tools/install.sh')


@pytest.fixture(scope='session')
def run_tool():
    """``run_tool(script, *args, check=True, timeout=600, env=None)``: run a
    tool as a subprocess from the repository root (see :func:`_run_tool`)."""
    return _run_tool
