"""Configs, seeded model building and weight loading for the tools."""
import logging
from typing import List, Optional, Tuple

import torch
from torch import nn

from .images import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    'load_config', 'eval_config', 'preprocessor_mean_std', 'build_model',
    'load_weights'
]


def load_config(path: str, cfg_options: Optional[dict] = None):
    """The ``Config`` of a file or of a package path such as
    ``mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py``.

    Args:
        path (str): Config file, or ``package::relative/path.py``.
        cfg_options (dict, optional): Merged into the config (as
            ``--cfg-options`` of the tools). Defaults to None.

    Returns:
        mmengine.Config: The config.
    """
    from mmengine.config import Config
    if '::' in path:
        from mmengine.hub import get_config
        cfg = get_config(path)
    else:
        cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def eval_config(path: str, cfg_options: Optional[dict] = None):
    """:func:`load_config`, ready to build models and data loaders in
    process: MMPretrain's default scope, the collate-fn scope stripped
    (:func:`mmsbam.compat.strip_collate_scope`) and the training data root
    made absolute."""
    import os.path as osp

    from mmpretrain.utils import register_all_modules

    from ..compat import strip_collate_scope
    register_all_modules(init_default_scope=True)
    cfg = load_config(path, cfg_options)
    strip_collate_scope(cfg)
    dataset = cfg.train_dataloader.dataset
    if not osp.isabs(dataset.get('data_root', '/')):
        dataset.data_root = osp.abspath(dataset.data_root)
    return cfg


def preprocessor_mean_std(cfg) -> Tuple[List[float], List[float]]:
    """Mean and std (0..255) of the config's data preprocessor (top level
    or the model's), else MMPretrain's ImageNet ones."""
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor')
    if pre and pre.get('mean') is not None and pre.get('std') is not None:
        return list(pre['mean']), list(pre['std'])
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


def build_model(model_cfg: dict, seed: int) -> nn.Module:
    """Build a model and draw its initial weights under ``seed``.

    Registers MMPretrain's modules (without touching the default scope),
    seeds torch (construction draws random numbers too), builds, runs
    ``init_weights()`` with MMEngine's per-parameter log lines silenced and
    returns the model in eval mode.

    Args:
        model_cfg (dict): Model config for MMPretrain's ``MODELS``.
        seed (int): Seed of ``torch.manual_seed``.

    Returns:
        nn.Module: The initialised model, in eval mode.
    """
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    model.eval()  # VisionTransformer.train() does not return self
    return model


def _strip(state: dict, prefix: str) -> dict:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v
            for k, v in state.items()}


#: Parameters only a masked forward uses (iBOTViT's): a backbone checkpoint
#: for evaluation may lack them even when loading strictly.
MASKED_ONLY = ('mask_token', )


def load_weights(model: nn.Module, path: str, strict: bool = False) -> dict:
    """Load an MMEngine checkpoint of a whole model or of a bare backbone.

    ``model`` may be a whole model (with a ``backbone`` attribute) or a bare
    backbone; ``module.`` prefixes (DDP) are dropped. Tensors the
    checkpoint lacks keep their values.

    Args:
        model (nn.Module): The model to load into.
        path (str): Checkpoint file.
        strict (bool): Also refuse a checkpoint that lacks a tensor of the
            backbone (the neck and head, and :data:`MASKED_ONLY`
            parameters, may still be missing). Defaults to False.

    Returns:
        dict: ``kind`` (``'model'`` or ``'backbone'``: what the checkpoint
        holds), ``loaded`` and ``total`` (tensors of ``model``), ``missing``
        (keys of ``model`` the checkpoint lacks) and ``has_decoder``
        (whether it holds an MAE decoder, ``neck.*``).

    Raises:
        RuntimeError: No key fits ``model``, a key has another shape (a
            checkpoint of another architecture), or, with ``strict``, a
            backbone tensor is missing.
    """
    from mmengine.runner import CheckpointLoader
    ckpt = CheckpointLoader.load_checkpoint(
        path, map_location='cpu', logger='silent')
    state = _strip(ckpt.get('state_dict', ckpt), 'module.')
    whole = any(k.startswith('backbone.') for k in state)
    has_decoder = whole and any(k.startswith('neck.') for k in state)
    if isinstance(getattr(model, 'backbone', None), nn.Module):
        prefix = 'backbone.'
        if not whole:
            state = {prefix + k: v for k, v in state.items()}
    else:
        prefix = ''
        if whole:
            state = {k[len('backbone.'):]: v for k, v in state.items()
                     if k.startswith('backbone.')}
    own = model.state_dict()
    matched = [k for k in own if k in state]
    missing = [k for k in own if k not in state]
    wrong = [f'{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
             for k in matched if state[k].shape != own[k].shape]
    lacking = [k for k in missing if k.startswith(prefix)
               and k.rpartition('.')[2] not in MASKED_ONLY] if strict else []
    if not matched or wrong or lacking:
        raise RuntimeError(
            f'{path} does not fit this {type(model).__name__}: '
            f'{len(matched)} of its {len(own)} tensors found' +
            (f'; shape mismatches (checkpoint vs model) {wrong[:3]}'
             if wrong else '') +
            (f'; backbone tensors missing, e.g. {lacking[:3]}'
             if lacking else ''))
    model.load_state_dict({k: state[k] for k in matched}, strict=False)
    return dict(kind='model' if whole else 'backbone', loaded=len(matched),
                total=len(own), missing=missing, has_decoder=has_decoder)
