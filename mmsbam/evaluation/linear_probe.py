"""Linear probe on cached features of a frozen encoder.

The probe of ``configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py`` (MAE's
head: BatchNorm without affine, then a Linear layer; SGD, 1 linear warm-up
epoch, then cosine) trained on features extracted once. With a frozen
backbone and an unaugmented pipeline (that config has none), every epoch
sees the same inputs, so this trains the same probe in seconds instead of
one encoder forward per image and epoch.
"""
import math
from typing import Tuple

import torch
from torch import Tensor, nn

__all__ = ['linear_probe_top1']


def linear_probe_top1(train: Tuple[Tensor, Tensor], test: Tuple[Tensor,
                                                                Tensor],
                      epochs: int = 10, lr: float = 0.1,
                      batch_size: int = 256, seed: int = 0) -> float:
    """Test top-1 (%) of a linear probe trained on ``train`` features.

    Args:
        train (tuple): Features (N, D) and labels (N,) of the train split.
        test (tuple): Features and labels of the test split.
        epochs (int): Training epochs, >= 2 (one warm-up epoch). Defaults
            to 10.
        lr (float): Peak SGD learning rate (momentum 0.9, no weight
            decay). Defaults to 0.1.
        batch_size (int): Defaults to 256.
        seed (int): Seed of the initialisation and the batch order.

    Returns:
        float: Top-1 accuracy in percent.
    """
    if epochs < 2:
        raise ValueError(f'epochs must be >= 2 (1 warm-up), got {epochs}')
    (x, y), (xt, yt) = train, test
    g = torch.Generator().manual_seed(seed)
    num_classes = int(max(y.max(), yt.max())) + 1
    probe = nn.Sequential(
        nn.BatchNorm1d(x.shape[1], affine=False, eps=1e-6),
        nn.Linear(x.shape[1], num_classes))
    with torch.no_grad():  # MAE's head init: truncated normal, std 0.01
        probe[1].weight.copy_(torch.nn.init.trunc_normal_(
            torch.empty_like(probe[1].weight), std=0.01, generator=g))
        probe[1].bias.zero_()
    opt = torch.optim.SGD(probe.parameters(), lr=lr, momentum=0.9)
    steps = math.ceil(len(x) / batch_size)
    total, warm = epochs * steps, steps
    t = 0
    probe.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(steps):
            if t < warm:  # LinearLR(start_factor=0.01), then cosine
                factor = 0.01 + 0.99 * t / (warm - 1 if warm > 1 else 1)
            else:
                factor = (1 + math.cos(math.pi * (t - warm) /
                                       (total - warm))) / 2
            for group in opt.param_groups:
                group['lr'] = lr * factor
            idx = order[i * batch_size:(i + 1) * batch_size]
            loss = nn.functional.cross_entropy(probe(x[idx].float()), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            t += 1
    probe.eval()
    with torch.no_grad():
        pred = probe(xt.float()).argmax(1)
    return 100.0 * (pred == yt).float().mean().item()
