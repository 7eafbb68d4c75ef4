"""Weighted k-NN evaluation of a frozen encoder (as in DINO / InstDisc).

A quick, training-free check of pre-trained features: embed the labelled
train split and the test split with the frozen backbone, L2-normalise, and
let each test image's ``k`` most cosine-similar train images vote with
weight ``exp(sim / T)``.
"""
import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from torch import Tensor, nn

__all__ = [
    'build_encoder_model', 'split_dataset', 'dataset_split', 'split_loader',
    'extract_features', 'knn_classify', 'knn_top1', 'pixel_knn_top1'
]


def build_encoder_model(cfg, backbone_type: Optional[str] = None) -> nn.Module:
    """The config's model with its top-level ``data_preprocessor`` (as the
    Runner builds it), optionally with another backbone type."""
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if backbone_type is not None:
        model_cfg.backbone.type = backbone_type
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    return MODELS.build(model_cfg)


def split_dataset(cfg, test_mode: bool):
    """Dataset config of the train or test split: the config's
    ``test_dataloader.dataset`` if it has one, else the training dataset
    with ``test_mode=True`` (the MNIST datasets then read their test
    files)."""
    test = cfg.get('test_dataloader') or {}
    if test_mode and test.get('dataset'):
        return copy.deepcopy(test['dataset'])
    return dataset_split(cfg.train_dataloader.dataset, test_mode)


def dataset_split(dataset: dict, test_mode: bool) -> dict:
    """A copy of the dataset config ``dataset`` with ``test_mode`` (and,
    for the MNIST datasets, ``split='test'``) for the test split."""
    dataset = copy.deepcopy(dataset)
    dataset.update(test_mode=test_mode)
    if test_mode and dataset.get('type') in ('MNIST', 'FashionMNIST',
                                             'ClutteredFashionMNIST'):
        dataset.update(split='test')
    return dataset


def split_loader(cfg, test_mode: bool, batch_size: int):
    """Unaugmented, ordered loader of a split. Both splits use the pipeline
    of the config's ``test_dataloader`` if it has one (ImageNet-style
    folders: resize, centre crop, ``PackInputs``), else ``PackInputs`` only
    (images already of the encoder's size, as Fashion-MNIST's)."""
    from mmengine.runner import Runner
    dataset = split_dataset(cfg, test_mode)
    test = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    dataset.update(pipeline=copy.deepcopy(
        test.get('pipeline') or [dict(type='PackInputs')]))
    return Runner.build_dataloader(
        dict(batch_size=batch_size, num_workers=0, dataset=dataset,
             sampler=dict(type='DefaultSampler', shuffle=False),
             collate_fn=dict(type='default_collate')))


@torch.no_grad()
def extract_features(model: nn.Module, dataloader, feature: str = 'avg',
                     log_every: int = 50) -> Tuple[Tensor, Tensor]:
    """Embed every image of ``dataloader`` with ``model``'s frozen backbone.

    Args:
        model (nn.Module): An MMPretrain model with ``data_preprocessor``
            and a backbone whose ``forward(x, mask=None)`` returns the raw
            tokens (B, 1 + L, C), as ``MAEViT``/``SBAMViT`` do, or feature
            maps (B, C, H, W), as SimMIM's Swin does (averaged).
        dataloader: Yields MMEngine data dicts (``inputs``,
            ``data_samples`` with ``gt_label``).
        feature (str): ``'avg'`` (mean of patch tokens), ``'cls'``, or
            ``'pixels'``: the raw pixels, no network (``model`` unused), a
            reference that pre-training should beat.
        log_every (int): Log progress every this many batches.

    Returns:
        tuple: features (N, C) float32 L2-normalised, labels (N,) long.
    """
    if feature not in ('avg', 'cls', 'pixels'):
        raise ValueError(
            f"feature must be 'avg', 'cls' or 'pixels', got {feature!r}")
    logger = MMLogger.get_current_instance()
    if model is not None:
        model.eval()
    feats, labels = [], []
    for i, data in enumerate(dataloader):
        if feature == 'pixels':
            pooled = data['inputs'].flatten(1)
        else:
            data = model.data_preprocessor(data, training=False)
            tokens = model.backbone(data['inputs'], mask=None)
            if isinstance(tokens, (tuple, list)):
                tokens = tokens[-1]
            if tokens.dim() == 4:  # a feature map (Swin): no class token
                if feature == 'cls':
                    raise ValueError("feature='cls' needs a class token; "
                                     f'{type(model.backbone).__name__} '
                                     "returns feature maps: use 'avg'")
                pooled = tokens.mean((2, 3))
            else:
                pooled = (tokens[:, 1:].mean(1)
                          if feature == 'avg' else tokens[:, 0])
        feats.append(F.normalize(pooled.float(), dim=1))
        labels.append(
            torch.cat([s.gt_label.view(-1) for s in data['data_samples']]))
        if log_every and (i + 1) % log_every == 0:
            logger.info(f'k-NN features: {i + 1}/{len(dataloader)} batches')
    return torch.cat(feats), torch.cat(labels).long()


@torch.no_grad()
def knn_classify(train_feats: Tensor, train_labels: Tensor,
                 test_feats: Tensor, k: int = 20,
                 temperature: float = 0.07,
                 num_classes: Optional[int] = None,
                 chunk: int = 1024) -> Tensor:
    """Predicted class of each test feature by weighted k-NN vote.

    Features must be L2-normalised. Returns (N_test,) long.
    """
    if k < 1 or k > len(train_feats):
        raise ValueError(f'k must be in [1, {len(train_feats)}], got {k}')
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    num_classes = num_classes or int(train_labels.max()) + 1
    preds = []
    for start in range(0, len(test_feats), chunk):
        sim = test_feats[start:start + chunk] @ train_feats.T
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes, dtype=sim.dtype)
        votes.scatter_add_(1, train_labels[top_idx], (top_sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def pixel_knn_top1(dataset: dict, num_train: Optional[int] = None,
                   num_test: Optional[int] = None, ks: Sequence[int] = (20, ),
                   temperature: float = 0.07,
                   batch_size: int = 500) -> Dict[int, float]:
    """Top-1 accuracy (%) of weighted k-NN on the raw pixels of a dataset:
    the reference that needs no network.

    Args:
        dataset (dict): Dataset config (its ``test_mode`` and ``pipeline``
            are replaced: each split, ``PackInputs`` only).
        num_train (int, optional): Use the first this many train images
            (the dataset's ``indices``). Defaults to None (all).
        num_test (int, optional): Likewise for the test split.
        ks (Sequence[int]): Numbers of neighbours. Defaults to (20, ).
        temperature (float): Vote temperature. Defaults to 0.07.
        batch_size (int): Images per loader batch. Defaults to 500.

    Returns:
        dict[int, float]: Accuracy (%) per ``k``.
    """
    from mmengine.runner import Runner

    from mmpretrain.registry import DATASETS
    feats = []
    for test_mode, num in ((False, num_train), (True, num_test)):
        split = dataset_split(dataset, test_mode)
        split.update(pipeline=[dict(type='PackInputs')])
        if num is not None:
            split.update(indices=num)
        loader = Runner.build_dataloader(
            dict(batch_size=batch_size, num_workers=0,
                 dataset=DATASETS.build(split),
                 sampler=dict(type='DefaultSampler', shuffle=False),
                 collate_fn=dict(type='default_collate')))
        feats.append(extract_features(None, loader, 'pixels', 0))
    return knn_top1(feats[0], feats[1], ks, temperature)


def knn_top1(train: Tuple[Tensor, Tensor], test: Tuple[Tensor, Tensor],
             ks: Sequence[int] = (20, ),
             temperature: float = 0.07) -> Dict[int, float]:
    """Top-1 accuracy (%) of weighted k-NN for each ``k`` in ``ks``."""
    (train_feats, train_labels), (test_feats, test_labels) = train, test
    return {
        k: 100.0 * (knn_classify(train_feats, train_labels, test_feats, k,
                                 temperature) == test_labels).float().mean()
        .item()
        for k in ks
    }
