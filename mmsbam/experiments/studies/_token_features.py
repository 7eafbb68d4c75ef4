"""Frozen-encoder measures shared by the BootMAE and CMAE studies: one
encoder pass per image gives both the class token and the mean patch token
(the harness's :class:`~..evaluators.FrozenFeatures` reads one feature per
pass), scored by k-NN and, optionally, a linear probe on cached features.

Both method comparisons evaluate the encoder this way (BootMAE its
student, CMAE its online encoder), so their stored figures and a rerun
through the harness are measured alike. :func:`page_fmt` rounds as both
pages were first written, so that re-rendering keeps their figures.
"""
import os.path as osp
from decimal import ROUND_HALF_UP, Decimal
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..tables import fmt

__all__ = ['token_features', 'TokenProbe', 'InitialTokenBaseline',
           'page_round', 'page_fmt']

Features = Tuple[torch.Tensor, torch.Tensor]


def page_round(value: float, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals, rounded as the BootMAE and CMAE
    pages were first written: from its value with one more decimal, half
    up (70.71499 -> 70.715 -> 70.72)."""
    more = Decimal(f'{value:.{digits + 1}f}')
    return str(more.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP))


def page_fmt(cell: Optional[Dict[str, Any]], digits: int = 2) -> str:
    """:func:`~..tables.fmt` with :func:`page_round`."""
    return fmt(cell, digits, page_round)


@torch.no_grad()
def token_features(model: torch.nn.Module,
                   loader: Any) -> Dict[str, Features]:
    """Unnormalised class token (``'cls'``) and mean patch token
    (``'avg'``) of every image with the labels, from the last output of
    ``model.backbone(x, mask=None)`` (tokens ``(B, 1 + L, C)``)."""
    model.eval()
    feats: Dict[str, List[torch.Tensor]] = dict(cls=[], avg=[])
    labels = []
    for data in loader:
        data = model.data_preprocessor(data, training=False)
        tokens = model.backbone(data['inputs'], mask=None)[-1]
        feats['cls'].append(tokens[:, 0].float())
        feats['avg'].append(tokens[:, 1:].mean(1).float())
        labels.append(torch.cat(
            [s.gt_label.view(-1) for s in data['data_samples']]))
    y = torch.cat(labels).long()
    return {name: (torch.cat(f), y) for name, f in feats.items()}


@dataclass(frozen=True)
class TokenProbe:
    """k-NN top-1 (%) of the class token and the mean patch token of the
    frozen encoder (train split vs test split, features L2-normalised),
    and a linear probe on one of them (cached, unnormalised features).

    Attributes:
        keys (tuple): ``(feature, result key)`` pairs of the k-NN scores,
            feature ``'cls'`` or ``'avg'``.
        k (int): Neighbours. temperature (float): Vote temperature.
        train_images (int): First N images of the training dataset (the
            MNIST test split follows the same ``indices``; 0: all).
        test_pipeline (tuple[dict]): Pipeline of both splits, e.g. a resize
            to the encoder's input size; empty: ``PackInputs`` only.
        linear_epochs (int): Epochs of the probe
            (:func:`~mmsbam.evaluation.linear_probe_top1`); 0: none.
        linear_feature (str): The probed feature. linear_key (str): Its
            result key.
    """
    keys: Tuple[Tuple[str, str], ...] = (('cls', 'knn_cls'),
                                         ('avg', 'knn_avg'))
    k: int = 20
    temperature: float = 0.07
    train_images: int = 0
    test_pipeline: Tuple[Dict[str, Any], ...] = ()
    linear_epochs: int = 0
    linear_feature: str = 'cls'
    linear_key: str = 'linear'
    name: str = 'token_probe'

    def eval_cfg(self, config: str) -> Any:
        """The config, ready to embed both splits unaugmented."""
        from ...analysis.models import eval_config
        cfg = eval_config(config)
        train = cfg.train_dataloader.dataset
        if self.train_images:
            train.indices = self.train_images
        if self.test_pipeline:
            cfg.test_dataloader = dict(dataset=dict(
                type=train.type, data_root=train.data_root, split='test',
                test_mode=True, pipeline=[dict(p)
                                          for p in self.test_pipeline]))
        return cfg

    def measure(self, config: str, checkpoint: Optional[str],
                seed: int) -> Dict[str, float]:
        """The scores of ``checkpoint``'s encoder (None: the initial
        weights drawn under ``seed``)."""
        from ...analysis.models import load_weights
        from ...evaluation import (build_encoder_model, knn_top1,
                                   linear_probe_top1, split_loader)
        cfg = self.eval_cfg(config)
        torch.manual_seed(seed)
        model = build_encoder_model(cfg)
        if checkpoint is None:
            model.init_weights()
        else:
            load_weights(model, checkpoint, strict=True)
        train, test = (token_features(model, split_loader(cfg, mode, 500))
                       for mode in (False, True))
        out = {}
        for feature, key in self.keys:
            k = min(self.k, len(train[feature][1]))
            out[key] = knn_top1(
                (F.normalize(train[feature][0], dim=1), train[feature][1]),
                (F.normalize(test[feature][0], dim=1), test[feature][1]),
                ks=(k, ), temperature=self.temperature)[k]
        if self.linear_epochs:
            out[self.linear_key] = linear_probe_top1(
                train[self.linear_feature], test[self.linear_feature],
                epochs=self.linear_epochs, seed=seed)
        return out

    def __call__(self, run: Any) -> Dict[str, float]:
        return self.measure(run.config, run.checkpoint(), run.cell.seed)


@dataclass(frozen=True)
class InitialTokenBaseline:
    """The :class:`TokenProbe` of the first arm's encoder at its initial
    weights, one entry per seed.

    Attributes:
        probe (TokenProbe): The measure.
        seeds (tuple[int]): Seeds measured (empty: the spec's).
        from_lr_zero (bool): Read the weights from the seed's
            learning-rate-0 control (the first ``lr_zero`` arm with the
            first arm's config), whose encoder never moves: the initial
            weights exactly as that seed's pre-training drew them. Without
            its checkpoint, or False: drawn under the seed in process.
    """
    probe: TokenProbe
    seeds: Tuple[int, ...] = ()
    from_lr_zero: bool = False
    name: str = 'initial_weights'

    def checkpoint(self, spec: Any, seed: int) -> Optional[str]:
        """The control's last checkpoint for ``seed``, if it exists."""
        from ..spec import cell_name
        if not self.from_lr_zero:
            return None
        for arm in spec.arms:
            if arm.lr_zero and arm.config == spec.arms[0].config:
                path = osp.join(spec.work_dir, cell_name(arm.name, None,
                                                         seed),
                                'pretrain', f'epoch_{spec.epochs}.pth')
                return path if osp.isfile(path) else None
        return None

    def __call__(self, spec: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for seed in self.seeds or spec.seeds:
            ckpt = self.checkpoint(spec, seed)
            res = dict(self.probe.measure(spec.arms[0].config, ckpt, seed))
            res['weights'] = ckpt or f'initialised in process, seed {seed}'
            out[str(seed)] = res
        return out
