"""Checks made before the Runner trains or tests: clear errors instead of
a silent or cryptic failure deep inside MMEngine.

- :func:`check_checkpoint_compatible`: a checkpoint given as ``load_from``,
  ``--resume`` or ``init_cfg=dict(type='Pretrained')`` of the backbone is
  compared, by key and shape only, with the model the config builds, before
  the Runner exists. MMEngine loads all three with ``strict=False`` and only
  warns, so a ViT-L checkpoint "loads" into a ViT-B that then trains from
  scratch.
- :func:`check_components`: the model, the custom hooks and mmsbam's
  optimizer wrappers are built from the config once before the Runner
  exists, so that a bad value raises its error (naming the key and its
  allowed range) before the Runner creates the work dir, its log and its
  config dump.
- :func:`check_dataset_built`: the train / test dataset builds and is not
  empty, with the dataset type and path in the message.
"""
import copy
import os.path as osp
import re
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    'check_components', 'check_checkpoint_compatible', 'checkpoints_to_check',
    'check_dataset_built'
]


# ------------------------------------------------------------- components
@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Move every parameter to the meta device as it is registered, so that
    building a model allocates and initialises no weights. Other tensors
    stay on the CPU: constructors such as Swin's and CAE's call ``.item()``
    on ``torch.linspace`` (drop-path rates), which a meta default device
    refuses."""
    register = nn.Module.register_parameter

    def register_on_meta(module, name, param):
        register(module, name, param)
        if param is not None and param.device.type != 'meta':
            module._parameters[name] = nn.Parameter(
                param.detach().to('meta'), param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        with warnings.catch_warnings():
            # weights a constructor loads (a CLIP target) land nowhere
            warnings.filterwarnings('ignore', message='.*to a meta parameter')
            yield
    finally:
        nn.Module.register_parameter = register


def _build_model(model_cfg, registry=None) -> nn.Module:
    """The model a config builds, with its parameters on the meta device
    (no weights allocated) where its modules allow it, else on the CPU."""
    if registry is None:
        from mmpretrain.registry import MODELS as registry
    try:
        with _parameters_on_meta():
            return registry.build(copy.deepcopy(model_cfg))
    except Exception:  # a module that needs real weights when built
        return registry.build(copy.deepcopy(model_cfg))


def _is_mmsbam(registry, type_) -> bool:
    """Whether ``type_`` names a component that mmsbam registers, looked
    up as the Runner does (in the registry of the default scope)."""
    if isinstance(type_, type):
        return type_.__module__.startswith('mmsbam')
    if not isinstance(type_, str):
        return False
    with registry.switch_scope_and_registry(None) as scoped:
        cls = scoped.get(type_)
    return cls is not None and cls.__module__.startswith('mmsbam')


def check_components(cfg, train: bool = True) -> None:
    """Build, as the Runner will, what the config's values configure, and
    let their own checks raise before the Runner writes anything: the
    model (on the meta device: no weights, no memory), every
    ``custom_hooks`` entry and, for training, an ``optim_wrapper`` of
    mmsbam (``iBOTOptimWrapper``, ``AmpiBOTOptimWrapper``) around that
    model. The objects are discarded; the Runner builds its own after
    seeding. A constructor that loads weights (a CLIP target generator)
    reads them here too. Stock optimizer wrappers are left to the Runner
    (their constructors, e.g. layer-wise LR decay, were not tried on meta
    parameters).
    """
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import HOOKS, MODELS, OPTIM_WRAPPERS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        model = _build_model(cfg.model, MODELS) if 'model' in cfg else None
        for hook in cfg.get('custom_hooks') or []:
            if isinstance(hook, dict):
                HOOKS.build(copy.deepcopy(hook))
        wrapper = cfg.get('optim_wrapper')
        if train and model is not None and isinstance(wrapper, dict) and \
                _is_mmsbam(OPTIM_WRAPPERS, wrapper.get('type')):
            build_optim_wrapper(model, copy.deepcopy(wrapper))


# ----------------------------------------------------------- checkpoints
def _is_local(path) -> bool:
    """A file path rather than a URL (``s3://``, ``http://``)."""
    return isinstance(path, str) and '://' not in path


def _read_state_dict(path: str) -> Dict[str, Tensor]:
    """State dict of an MMEngine (or bare) checkpoint; reads tensors lazily
    (``mmap``) where the file format allows it."""
    try:
        try:
            ckpt = torch.load(path, map_location='cpu', mmap=True)
        except RuntimeError as err:
            if 'mmap' not in str(err):
                raise
            ckpt = torch.load(path, map_location='cpu')  # legacy format
    except Exception as err:
        raise RuntimeError(
            f'cannot read checkpoint {path}: {err}. The file may be '
            'truncated (an interrupted save) or not a PyTorch checkpoint; '
            'use an earlier checkpoint of the work dir.') from err
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict):
        raise RuntimeError(f'{path} holds no state_dict')
    return {re.sub(r'^module\.', '', k): v
            for k, v in ckpt.items() if isinstance(v, Tensor)}


def _model_shapes(model_cfg) -> Dict[str, torch.Size]:
    """Parameter and buffer shapes of the model a config builds, without
    allocating its weights (meta device)."""
    model = _build_model(model_cfg)
    return {k: v.shape for k, v in model.state_dict().items()}


def _resizable(key: str, have: torch.Size, want: torch.Size) -> bool:
    """ViT position embeddings are interpolated on load (a load_state_dict
    pre-hook of MMPretrain's VisionTransformer) when only the token count
    differs."""
    return (key.endswith('pos_embed') and len(have) == len(want) == 3
            and have[-1] == want[-1])


def _compare(ckpt: Dict[str, Tensor], model: Dict[str, torch.Size],
             strict: bool) -> List[str]:
    problems = []
    for key, want in model.items():
        if key not in ckpt:
            if strict:
                problems.append(f'{key}: missing from the checkpoint')
            continue
        have = ckpt[key].shape
        if have != want and not _resizable(key, have, want):
            problems.append(f'{key}: checkpoint {tuple(have)}, model '
                            f'{tuple(want)}')
    if strict:
        problems += [f'{key}: not in the model'
                     for key in ckpt if key not in model]
    if not strict and not set(ckpt) & set(model):
        problems.insert(0, 'no parameter name in common (checkpoint keys '
                        f'start {sorted(ckpt)[:3]}, model keys '
                        f'{sorted(model)[:3]})')
    return problems


def checkpoints_to_check(cfg, init: bool = True
                         ) -> List[Tuple[str, str, Optional[str]]]:
    """``(what, path, prefix)`` for each local checkpoint the Runner will
    load: ``resume`` (as MMEngine resolves it), ``load_from`` and, with
    ``init`` (training initialises weights, testing does not), a
    ``Pretrained`` ``init_cfg`` of ``model.backbone``."""
    from mmengine.runner import find_latest_checkpoint
    found = []
    load_from = cfg.get('load_from')
    if cfg.get('resume'):
        path = load_from or find_latest_checkpoint(cfg.work_dir)
        if path:
            found.append(('resume', path, None))
    elif load_from:
        found.append(('load_from', load_from, None))
    backbone = cfg.model.get('backbone') if 'model' in cfg else None
    inits = backbone.get('init_cfg') if isinstance(backbone, dict) else None
    if not init:
        inits = None
    for item in (inits if isinstance(inits, (list, tuple)) else [inits]):
        if isinstance(item, dict) and item.get('type') == 'Pretrained' and \
                item.get('checkpoint'):
            found.append(('model.backbone.init_cfg (Pretrained)',
                          item['checkpoint'], item.get('prefix')))
    return [f for f in found if _is_local(f[1])]


def check_checkpoint_compatible(cfg, for_test: bool = False,
                                max_listed: int = 8) -> None:
    """Raise ``RuntimeError`` if a checkpoint the config loads does not fit
    its model.

    ``resume`` must match exactly (every key, every shape). ``load_from``
    and the backbone's ``Pretrained`` init keep MMEngine's tolerance for
    missing and unexpected keys (a pre-training checkpoint into a
    classifier), but a shape mismatch, or no key in common, is an error:
    MMEngine would skip those weights with a warning and train from random
    ones. ``for_test=True`` (``tools/test.py``: the checkpoint to
    evaluate) treats ``load_from`` like ``resume`` and skips the
    ``Pretrained`` init, which testing does not run. Only names and shapes
    are read (``mmap``), nothing is copied.
    """
    todo = checkpoints_to_check(cfg, init=not for_test)
    if not todo:
        return
    model_shapes = None
    for what, path, prefix in todo:
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what}: checkpoint {path} does not '
                                    'exist')
        ckpt = _read_state_dict(path)
        if model_shapes is None:
            model_shapes = _model_shapes(cfg.model)
        model = model_shapes
        if prefix is not None:  # Pretrained init of the backbone
            p = prefix if prefix.endswith('.') else prefix + '.'
            ckpt = {k[len(p):]: v for k, v in ckpt.items()
                    if k.startswith(p)}
            model = {k[len('backbone.'):]: v for k, v in model.items()
                     if k.startswith('backbone.')}
        elif what.startswith('model.backbone'):
            model = {k[len('backbone.'):]: v for k, v in model.items()
                     if k.startswith('backbone.')}
        strict = what == 'resume' or (what == 'load_from'
                                      and for_test)
        problems = _compare(ckpt, model, strict=strict)
        if problems:
            shown = '\n  '.join(problems[:max_listed])
            more = len(problems) - max_listed
            more = f'\n  ... and {more} more' if more > 0 else ''
            raise RuntimeError(
                f'{what}: checkpoint {path} does not fit the model of this '
                f'config ({len(problems)} mismatches):\n  {shown}{more}\n'
                'Is it from another architecture (e.g. ViT-L into a ViT-B '
                'config) or another in_channels / patch_size? Use the config '
                'the checkpoint was trained with, or a matching checkpoint.')


# --------------------------------------------------------------- datasets
def _describe_dataset(cfg) -> str:
    if not isinstance(cfg, dict):
        return type(cfg).__name__
    parts = [str(cfg.get('type'))]
    for key in ('data_root', 'data_prefix', 'ann_file'):
        if cfg.get(key):
            parts.append(f'{key}={cfg[key]!r}')
    return ' '.join(parts)


def check_dataset_built(runner, split: str = 'train') -> None:
    """Build ``runner``'s ``<split>_dataloader`` now (the Runner keeps it,
    so nothing is built twice) and raise ``RuntimeError`` with the dataset
    and path if that fails or the dataset is empty."""
    cfg = runner.cfg.get(f'{split}_dataloader') or {}
    desc = _describe_dataset(cfg.get('dataset') if isinstance(cfg, dict)
                             else None)
    try:
        loader = getattr(runner, f'{split}_dataloader')
    except Exception as err:
        hint = ''
        if 'need at least one array to concatenate' in str(err):
            hint = (' The dataset is empty (no images found, an empty '
                    'annotation file, or indices=0).')
        raise RuntimeError(
            f'{split}_dataloader.dataset ({desc}) could not be built: '
            f'{err}.{hint} Check the path in the config (or '
            f'--cfg-options {split}_dataloader.dataset.data_root=...).'
        ) from err
    if len(loader.dataset) == 0 or len(loader) == 0:
        raise RuntimeError(
            f'{split}_dataloader.dataset ({desc}) is empty: '
            f'{len(loader.dataset)} samples, {len(loader)} batches. Check '
            'the path, the annotation file and any indices / filter.')
