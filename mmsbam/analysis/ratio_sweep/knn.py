"""k-NN of the sweep's encoders, in process (the numbers of
``tools/analysis_tools/knn_eval.py`` without its start-up)."""
import argparse
import time
from typing import Any, Dict, Optional, Tuple

import torch

from ...evaluation.knn import (build_encoder_model, extract_features,
                               knn_top1, split_dataset, split_loader)
from ..models import eval_config, load_weights
from .runs import cfg_options_dict

__all__ = [
    'knn_config', 'knn_accuracy', 'seconds_per_image', 'dataset_sizes'
]

_CACHE: Dict[str, Any] = {}


def knn_config(args: argparse.Namespace) -> Any:
    """The pre-training config with ``args.cfg_options``, ready for k-NN
    (collate scope stripped, data root absolute); built once."""
    if 'cfg' not in _CACHE:
        _CACHE['cfg'] = eval_config(
            args.config, cfg_options_dict(args.cfg_options))
    return _CACHE['cfg']


def _encoder(cfg: Any, method: str, ckpt: Optional[str],
             seed: int) -> torch.nn.Module:
    """The method's model with the weights of ``ckpt`` (every backbone
    tensor must fit), or its initial weights drawn with ``seed``."""
    torch.manual_seed(seed)
    model = build_encoder_model(
        cfg, 'MAEViT' if method == 'mae' else 'SBAMViT')
    if ckpt is None:
        model.init_weights()
    else:
        load_weights(model, ckpt, strict=True)
    return model.cuda() if torch.cuda.is_available() else model


def knn_accuracy(ckpt: Optional[str], method: str, args: argparse.Namespace,
                 seed: int = 0) -> Tuple[float, float]:
    """k-NN top-1 (%) of a checkpoint, and the seconds it took.

    Args:
        ckpt (str, optional): Pre-training checkpoint; None evaluates the
            initial weights drawn with ``seed`` (as ``knn_eval.py --init``).
        method (str): ``'mae'`` (``MAEViT``) or another (``SBAMViT``).
        args (argparse.Namespace): The sweep's ``config``, ``cfg_options``,
            ``knn_k``, ``knn_temperature`` and ``knn_batch_size``.
        seed (int): Seed of the initial weights. Defaults to 0.

    Returns:
        tuple[float, float]: Accuracy (%) and seconds.
    """
    cfg = knn_config(args)
    start = time.time()
    model = _encoder(cfg, method, ckpt, seed)
    with torch.no_grad():
        # features to the CPU: knn_classify votes in CPU tensors
        train, test = (tuple(t.cpu() for t in extract_features(
            model, split_loader(cfg, split, args.knn_batch_size), 'avg', 0))
            for split in (False, True))
    k = min(args.knn_k, len(train[1]))
    acc = knn_top1(train, test, [k], args.knn_temperature)[k]
    return acc, time.time() - start


def seconds_per_image(args: argparse.Namespace, batches: int = 4) -> float:
    """Seconds of a frozen forward per test image (k-NN, linear probe),
    from the first ``batches`` batches."""
    cfg = knn_config(args)
    model = build_encoder_model(cfg, 'SBAMViT').eval()
    if torch.cuda.is_available():
        model = model.cuda()
    loader = split_loader(cfg, True, args.knn_batch_size)
    start, n = time.time(), 0
    with torch.no_grad():
        for i, data in enumerate(loader):
            data = model.data_preprocessor(data, training=False)
            model.backbone(data['inputs'], mask=None)
            n += len(data['inputs'])
            if i >= batches - 1:
                break
    return (time.time() - start) / max(n, 1)


def dataset_sizes(args: argparse.Namespace) -> Tuple[int, int, int]:
    """(train images, test images, train batch size) of the config."""
    from mmpretrain.registry import DATASETS
    cfg = knn_config(args)
    sizes = []
    for test_mode in (False, True):
        ds = split_dataset(cfg, test_mode)
        ds.update(pipeline=[])
        sizes.append(len(DATASETS.build(ds)))
    n_train, n_test = sizes
    return n_train, n_test, cfg.train_dataloader.batch_size
