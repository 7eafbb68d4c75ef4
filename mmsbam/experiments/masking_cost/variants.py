"""The MAE variants of the masking-cost benchmark and their training.

SBAM adds no parameters, so the variants' state dicts are key-identical:
the stock model's initial weights are loaded into the others and all
compute the same network, each with its own AdamW optimizer.
"""
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from ...analysis.models import build_model, load_config
from ...masking import attention_salience

__all__ = [
    'VARIANTS', 'AMR_VARIANTS', 'CONFIGS', 'variant_model_cfgs',
    'build_variant_models', 'Trainer', 'cost_alone_ops'
]

VARIANTS: Tuple[str, ...] = ('MAE', 'SBM', 'AMR-sample', 'AMR-batch',
                             'AMR-sample-padded')
#: The variants whose masking ratio varies, by image or by batch.
AMR_VARIANTS: Tuple[str, ...] = ('AMR-sample', 'AMR-batch',
                                 'AMR-sample-padded')
CONFIGS: Dict[str, str] = {
    'b': 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py',
    'l': 'mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-300e_in1k.py',
}


def variant_model_cfgs(arch: str, img_size: int,
                       temperature: Optional[float] = None,
                       amr: Optional[dict] = None,
                       encoder_groups: Optional[int] = None
                       ) -> Dict[str, dict]:
    """Model configs of the variants, from MMPretrain's MAE config.

    Args:
        arch (str): ``'b'`` (ViT-B/16) or ``'l'`` (ViT-L/16).
        img_size (int): Image side, a multiple of the patch size 16.
        temperature (float, optional): Salience temperature of the SBAM
            variants (None: the masker's default, the paper's 1); a large
            one (e.g. the width, 768) spreads the salience as trained
            weights do, so that AMR ratios really differ per image.
        amr (dict, optional): ``ratio_var``/``delta`` of the AMR variants
            (None: the defaults).
        encoder_groups (int, optional): ``SBAMViT.encoder_groups`` of
            ``AMR-sample`` (None: the default).

    Returns:
        dict: ``{variant: model config}`` in the order of :data:`VARIANTS`:
        the stock ``MAEViT``; ``SBAMViT`` (SBM); ``SBAMViT`` with
        ``amr=dict(mode='sample')`` (images grouped by visible count), with
        ``amr=dict(mode='batch')``, and with ``mode='sample'`` encoded as
        one batch padded to its longest image (``encoder_groups=1``).
    """
    stock = load_config(CONFIGS[arch]).model.copy()
    stock.backbone = dict(stock.backbone, img_size=img_size)
    stock.neck = dict(stock.neck, num_patches=(img_size // 16)**2)
    sbam = dict(stock.backbone, type='SBAMViT')
    if temperature is not None:
        sbam['temperature'] = temperature
    amr = dict(amr or {})
    sample = dict(sbam, amr=dict(amr, mode='sample'))
    if encoder_groups is not None:
        sample['encoder_groups'] = encoder_groups
    backbones = {
        'MAE': stock.backbone,
        'SBM': sbam,
        'AMR-sample': sample,
        'AMR-batch': dict(sbam, amr=dict(amr, mode='batch')),
        'AMR-sample-padded': dict(sample, encoder_groups=1),
    }
    return {name: dict(stock, backbone=backbones[name]) for name in VARIANTS}


def build_variant_models(arch: str, img_size: int, device: torch.device,
                         seed: int, **settings) -> Dict[str, nn.Module]:
    """Stock MAE and the SBAM variants, sharing initial weights.

    The stock model is built and initialized under ``seed``; the others
    are built after it and load its state dict (strict).

    Args:
        arch (str): ``'b'`` or ``'l'``.
        img_size (int): Image side.
        device (torch.device): Where the models go.
        seed (int): Seed of the initial weights.
        **settings: ``temperature``, ``amr``, ``encoder_groups`` of
            :func:`variant_model_cfgs`.

    Returns:
        dict: ``{variant: model}`` in training mode, on ``device``.
    """
    from mmpretrain.registry import MODELS
    cfgs = variant_model_cfgs(arch, img_size, **settings)
    models: Dict[str, nn.Module] = {}
    state = None
    for name in VARIANTS:
        if state is None:
            model = build_model(cfgs[name], seed)
            state = model.state_dict()
        else:
            model = MODELS.build(cfgs[name])
            model.load_state_dict(state, strict=True)
        models[name] = model.to(device).train()
    return models


class Trainer:
    """One model, its AdamW optimizer and (float16 AMP) grad scaler.

    Args:
        model (nn.Module): An MMPretrain self-supervised model.
        lr (float): AdamW learning rate.
        amp (bool): Autocast: float16 with a ``GradScaler`` on CUDA,
            bfloat16 elsewhere.
        device (torch.device): The model's device.
    """

    def __init__(self, model: nn.Module, lr: float, amp: bool,
                 device: torch.device) -> None:
        self.model = model
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
        self.amp_dtype = None
        if amp:
            self.amp_dtype = (
                torch.float16 if device.type == 'cuda' else torch.bfloat16)
        self.scaler = (
            torch.amp.GradScaler('cuda')
            if self.amp_dtype == torch.float16 else None)
        self.device = device

    def autocast(self) -> ContextManager:
        """The autocast context of a step (a no-op without AMP)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self, inputs: Tensor) -> None:
        """``model.loss``, backward, optimizer step and ``zero_grad``."""
        with self.autocast():
            loss = self.model.loss(inputs, None)['loss']
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def cost_alone_ops(
        models: Dict[str, nn.Module]) -> Dict[str, Callable[[Tensor], Any]]:
    """What the masking costs by itself, each taking patch tokens (B, L, D).

    The AMR-sample masking overwrites that masker's ``last_masking``; the
    benchmark reads the train step's record before it runs these.

    Args:
        models (dict): From :func:`build_variant_models`.

    Returns:
        dict: ``{report label: op}``: the embedding and the attention
        salience (block 0) of SBM, SBM's and AMR-sample's whole masking
        (salience + mask), and stock ``MAEViT.random_masking``.
    """
    stock_bb = models['MAE'].backbone
    sbm_bb = models['SBM'].backbone
    amr_bb = models['AMR-sample'].backbone
    return {
        'salience (embedding, X X^T)':
        sbm_bb.masker.salience,
        'salience (attention, block 0)':
        lambda t: attention_salience(t, sbm_bb.layers, 0,
                                     sbm_bb.masker.temperature),
        'SBM masking (salience+mask)':
        sbm_bb.mask_tokens,
        'AMR-sample masking (salience+mask)':
        amr_bb.mask_tokens,
        'stock MAEViT.random_masking':
        lambda t: stock_bb.random_masking(t, stock_bb.mask_ratio),
    }
