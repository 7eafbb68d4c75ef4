"""Evaluators of a finished cell, and experiment-wide baselines.

An evaluator is a small frozen dataclass with a ``name`` and
``__call__(run: CellRun) -> dict`` (the keys it adds to the cell's
result); a baseline's ``__call__(spec) -> dict``. The runner stores each
one's output in its own file, so an interrupted cell keeps what finished.
Studies pick and parameterise them in their spec; the measures themselves
are library code (:mod:`mmsbam.evaluation`, :mod:`mmsbam.analysis`).
"""
import os.path as osp
import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch

__all__ = [
    'FrozenFeatures', 'FineTune', 'SalienceAUC', 'MaskContent',
    'RawPixelsBaseline',
    'InitialWeightsBaseline', 'FineTuneFromScratch', 'LossWindows',
    'LinearProbeRun', 'logged_records', 'last_val_top1'
]

#: The top-1 of a validation or test pass in an MMEngine log
VAL_ACC = re.compile(r'Epoch\((?:val|test)\).*accuracy/top1: ([\d.]+)')

_LOADERS: Dict[Tuple, List[dict]] = {}


def _splits(config: str, train_images: int,
            test_images: int) -> Dict[bool, List[dict]]:
    """The config's training dataset, train and test split, unaugmented
    (``PackInputs`` only), as collated batches; built once per process."""
    key = (config, train_images, test_images)
    if key not in _LOADERS:
        from ..analysis.models import eval_config
        from ..evaluation.knn import split_loader
        cfg = eval_config(config)
        out = {}
        for test_mode, n in ((False, train_images), (True, test_images)):
            cfg.train_dataloader.dataset.indices = n or None
            out[test_mode] = list(split_loader(cfg, test_mode, 500))
        _LOADERS[key] = out
    return _LOADERS[key]


def _encoder(config: str, checkpoint: Optional[str], seed: int,
             backbone_type: Optional[str] = None,
             cfg_options: Optional[dict] = None) -> torch.nn.Module:
    """The config's model (with ``cfg_options``) with ``checkpoint``'s
    weights (every backbone tensor must fit), or its initial weights drawn
    under ``seed``."""
    from ..analysis.models import eval_config, load_weights
    from ..evaluation.knn import build_encoder_model
    torch.manual_seed(seed)
    model = build_encoder_model(eval_config(config, cfg_options),
                                backbone_type)
    if checkpoint is None:
        model.init_weights()
    else:
        load_weights(model, checkpoint, strict=True)
    return model.eval()


@torch.no_grad()
def _features(model: Optional[torch.nn.Module], batches: List[dict],
              feature: str) -> Tuple[torch.Tensor, torch.Tensor]:
    from ..evaluation.knn import extract_features
    return extract_features(model, batches, feature, log_every=0)


@dataclass(frozen=True)
class FrozenFeatures:
    """k-NN and linear probe of the frozen encoder; k-NN after every
    epoch (the convergence curve) with ``every_epoch``.

    Attributes:
        feature (str): ``'avg'`` (mean patch token) or ``'cls'``.
        k (int): Neighbours. temperature (float): Vote temperature.
        train_images (int): First N training images (0: all).
        test_images (int): First N test images (0: all).
        linear_epochs (int): Epochs of the probe on cached features
            (:func:`~mmsbam.evaluation.linear_probe_top1`); 0: none.
        every_epoch (bool): Also the k-NN of epochs 1 .. E-1 (the
            convergence curve; the last epoch's point is measured on the
            curve's images too).
        curve_images (tuple[int, int]): (train, test) first images of the
            curve's k-NN, cheaper than the final measure's.
        curve_every (int): The curve's epochs are every ``curve_every``-th
            (and the last), to bound its cost.
    """
    feature: str = 'avg'
    k: int = 20
    temperature: float = 0.07
    train_images: int = 10000
    test_images: int = 0
    linear_epochs: int = 10
    every_epoch: bool = False
    curve_images: Tuple[int, int] = (5000, 2000)
    curve_every: int = 1
    name: str = 'frozen'

    def measure(self, config: str, checkpoint: Optional[str], seed: int,
                linear: bool = True,
                backbone_type: Optional[str] = None) -> Dict[str, float]:
        from ..evaluation import knn_top1, linear_probe_top1
        splits = _splits(config, self.train_images, self.test_images)
        model = (None if self.feature == 'pixels' else
                 _encoder(config, checkpoint, seed, backbone_type))
        train, test = (_features(model, splits[t], self.feature)
                       for t in (False, True))
        k = min(self.k, len(train[1]))
        out = dict(knn_top1=knn_top1(train, test, [k], self.temperature)[k])
        if linear and self.linear_epochs:
            out['linear_top1'] = linear_probe_top1(
                train, test, self.linear_epochs, seed=seed)
        return out

    def curve_epochs(self, epochs: int) -> List[int]:
        """The epochs of the convergence curve."""
        return sorted({*range(self.curve_every, epochs + 1,
                              self.curve_every), epochs})

    def __call__(self, run: Any) -> Dict[str, Any]:
        out: Dict[str, Any] = self.measure(run.config, run.checkpoint(),
                                           run.cell.seed)
        out['frozen'] = dict(feature=self.feature, k=self.k,
                             temperature=self.temperature,
                             train_images=self.train_images,
                             test_images=self.test_images,
                             linear_epochs=self.linear_epochs)
        if self.every_epoch:
            from dataclasses import replace
            cheap = replace(self, train_images=self.curve_images[0],
                            test_images=self.curve_images[1])
            out['convergence'] = [dict(epoch=e, knn_top1=cheap.measure(
                run.config, run.checkpoint(e), run.cell.seed,
                linear=False)['knn_top1'])
                for e in self.curve_epochs(run.spec.epochs)]
            out['frozen']['curve_images'] = list(self.curve_images)
            out['frozen']['curve_every'] = self.curve_every
        return out


def last_val_top1(log: str) -> float:
    """The last validation/test top-1 in an MMEngine log's text."""
    found = VAL_ACC.findall(log)
    if not found:
        raise RuntimeError('no accuracy/top1 in the log')
    return float(found[-1])


@dataclass(frozen=True)
class FineTune:
    """End-to-end fine-tuning of the pre-trained encoder with one recipe
    (``config``, e.g. ``configs/cluttered/vit-tiny-p8_ft-5e_cluttered64.py``)
    through ``tools/train.py``, validated once at its end; resumable.

    Attributes:
        config (str): The fine-tuning config.
        options (tuple[str]): Its ``--cfg-options``.
    """
    config: str
    options: Tuple[str, ...] = ()
    name: str = 'finetune'

    def run(self, work_dir: str, checkpoint: Optional[str],
            seed: int) -> Dict[str, Any]:
        from .runner import run_logged, show
        init = (f'model.backbone.init_cfg.checkpoint={checkpoint}'
                if checkpoint else 'model.backbone.init_cfg=None')
        cmd = [sys.executable, 'tools/train.py', self.config,
               '--work-dir', work_dir]
        if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
            cmd.append('--resume')
        cmd += ['--cfg-options', init, f'randomness.seed={seed}',
                *self.options]
        text, _ = run_logged(cmd, work_dir + '.log')
        return dict(finetune_top1=last_val_top1(text),
                    finetune_command=show(cmd))

    def __call__(self, run: Any) -> Dict[str, Any]:
        return self.run(osp.join(run.run_dir, 'finetune'),
                        run.checkpoint(), run.cell.seed)


def _model_options(run: Any) -> Optional[dict]:
    """The ``model.*`` part of a cell's pre-training options (what its
    encoder and masker were built with), as a dict."""
    from .schedule import cfg_options_dict
    return cfg_options_dict([o for o in run.options
                             if o.startswith('model.')])


def _object_salience(config: str, checkpoint: Optional[str], seed: int,
                     images: int, object_fraction: float,
                     cfg_options: Optional[dict] = None
                     ) -> Tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The encoder read as an ``SBAMViT`` (``cfg_options``: the cell's
    model options), SBAM's salience (N, L) of the first ``images``
    unaugmented test canvases, and which tokens are object (N, L): at
    least ``object_fraction`` of their pixels are garment, from the data
    info's ``garment_mask``."""
    from ..analysis.models import eval_config
    from ..analysis.salience_stats import compute_salience
    from ..evaluation.knn import split_dataset
    from mmpretrain.registry import DATASETS
    cfg = eval_config(config)
    model = _encoder(config, checkpoint, seed, 'SBAMViT', cfg_options)
    ds_cfg = split_dataset(cfg, True)
    ds_cfg.update(pipeline=[], indices=images)
    dataset = DATASETS.build(ds_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    raw = torch.stack([torch.as_tensor(i['img']) for i in infos])
    garment = torch.stack([torch.as_tensor(i['garment_mask'])
                           for i in infos]).float()
    pre = model.data_preprocessor
    x = (raw.unsqueeze(1).float() - pre.mean) / pre.std
    backbone = model.backbone
    patch = backbone.patch_embed.projection.kernel_size[0]
    with torch.no_grad():
        sal = compute_salience(backbone, x, backbone.masker, batch_size=500)
    fg = torch.nn.functional.avg_pool2d(
        garment.unsqueeze(1), patch).flatten(1) >= object_fraction
    return model, sal, fg


@dataclass(frozen=True)
class SalienceAUC:
    """How well SBAM's salience finds the object: per image, the AUC of
    the salience of object tokens against background tokens (object: at
    least ``object_fraction`` of the token's pixels are garment, from the
    data info's ``garment_mask``; unaugmented canvases), averaged over the
    first ``images`` test canvases. The encoder is read as an ``SBAMViT``
    (same weights), so an MAE arm is scored as SBAM would score it."""
    images: int = 2000
    object_fraction: float = 0.25
    name: str = 'salience_auc'

    def measure(self, config: str, checkpoint: Optional[str], seed: int,
                cfg_options: Optional[dict] = None) -> Dict[str, float]:
        from ..analysis.mask_content import salience_auc
        _, sal, fg = _object_salience(config, checkpoint, seed, self.images,
                                      self.object_fraction, cfg_options)
        auc = salience_auc(sal, fg)
        return dict(salience_auc=float(auc[~auc.isnan()].mean()),
                    object_tokens=float(fg.float().mean()))

    def __call__(self, run: Any) -> Dict[str, Any]:
        return self.measure(run.config, run.checkpoint(), run.cell.seed,
                            _model_options(run))


@dataclass(frozen=True)
class MaskContent:
    """What the masks hide, by a cell's final encoder: the share of the
    object tokens masked by random masking (MAE), SBM at the cell's ratio
    and SBM + per-image AMR (the spec's ``ratio_var`` for that ratio), all
    drawn with the same seeded noise, so differences
    come from the salience alone; and AMR's mean ratio. Same canvases and
    object tokens as :class:`SalienceAUC`. The paper's premise is that
    salience hides more of the object than random masking does."""
    images: int = 2000
    object_fraction: float = 0.25
    name: str = 'mask_content'

    def measure(self, config: str, checkpoint: Optional[str], seed: int,
                ratio: float, ratio_var: float,
                cfg_options: Optional[dict] = None) -> Dict[str, Any]:
        from ..analysis.mask_content import measure
        from ..masking.amr import DEFAULT_DELTA
        model, sal, fg = _object_salience(config, checkpoint, seed,
                                          self.images, self.object_fraction,
                                          cfg_options)
        masker = model.backbone.masker  # its noise and threshold
        amr = masker.amr
        out = measure(sal, fg, ratio=ratio, ratio_var=ratio_var, seed=seed,
                      noise_scale=masker.mask_generator.noise_scale,
                      delta=DEFAULT_DELTA if amr is None else amr.delta)
        return dict(object_hidden={k: v['fg_hidden'] for k, v in
                                   out['maskings'].items()},
                    amr_ratio_mean=out['amr_ratio_mean'])

    def __call__(self, run: Any) -> Dict[str, Any]:
        ratio = run.cell.ratio
        if ratio is None:
            raise ValueError(f'{self.name} needs a masking ratio per cell; '
                             f'{run.cell.name} has none')
        return self.measure(run.config, run.checkpoint(), run.cell.seed,
                            ratio, run.spec.fields(run.cell)['ratio_var'],
                            _model_options(run))


@dataclass(frozen=True)
class RawPixelsBaseline:
    """k-NN and linear probe on the raw pixels of the first arm's data."""
    frozen: FrozenFeatures
    name: str = 'raw_pixels'

    def __call__(self, spec: Any) -> Dict[str, Any]:
        from dataclasses import replace
        pixels = replace(self.frozen, feature='pixels')
        return pixels.measure(spec.arms[0].config, None, 0)


@dataclass(frozen=True)
class InitialWeightsBaseline:
    """k-NN, linear probe and salience AUC of the first arm's encoder at
    its initial weights, one per seed (mean in the report)."""
    frozen: FrozenFeatures
    salience: Optional[SalienceAUC] = None
    name: str = 'initial_weights'

    def __call__(self, spec: Any) -> Dict[str, Any]:
        out = {}
        for seed in spec.seeds:
            res = self.frozen.measure(spec.arms[0].config, None, seed)
            if self.salience is not None:
                res.update(self.salience.measure(spec.arms[0].config, None,
                                                 seed))
            out[str(seed)] = res
        return out


@dataclass(frozen=True)
class FineTuneFromScratch:
    """The fine-tuning recipe from the initial weights (no pre-training),
    one run per seed."""
    finetune: FineTune
    name: str = 'finetune_from_scratch'

    def __call__(self, spec: Any) -> Dict[str, Any]:
        root = osp.join(osp.abspath(spec.work_dir), 'baselines')
        return {str(seed): self.finetune.run(
            osp.join(root, f'finetune_scratch_s{seed}'), None, seed)
            for seed in spec.seeds}


def logged_records(pretrain_dir: str) -> List[Dict[str, Any]]:
    """The logged training records (those with a ``loss``) of a Runner work
    dir, one per logged iteration, over every log folder in time order (a
    resumed run logs into a new one; a repeated iteration keeps its last
    record)."""
    import glob
    import json
    by_iter: Dict[int, Dict[str, Any]] = {}
    for path in sorted(glob.glob(osp.join(pretrain_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for record in map(json.loads, f):
                if 'loss' in record:
                    by_iter[record['iter']] = record
    return [by_iter[i] for i in sorted(by_iter)]


@dataclass(frozen=True)
class LossWindows:
    """Mean logged pre-training loss over the first ``first`` and the last
    ``last`` share of the logged iterations (``loss_first``,
    ``loss_last``): losses of self-distillation methods are not monotone,
    so windows are compared, not single points.

    Attributes:
        first (float): Share of the iterations in the first window.
        last (float): Share in the last window.
        terms (tuple[str]): Loss terms also reported over the last window
            (``<term>_last``, e.g. ``loss_rc_last``).
        after_epoch (int, optional): Also the two windows over the records
            of epochs > ``after_epoch`` (``loss_first_t``, ``loss_last_t``;
            e.g. after iBoT's teacher-temperature warm-up). None: not.
    """
    first: float = 0.1
    last: float = 0.2
    terms: Tuple[str, ...] = ()
    after_epoch: Optional[int] = None
    name: str = 'loss_windows'
    on_lr_zero: bool = True

    def _windows(self, rows: List[Dict[str, Any]], suffix: str = ''
                 ) -> Dict[str, float]:
        n_first = max(1, int(len(rows) * self.first))
        n_last = max(1, int(len(rows) * self.last))

        def mean(key: str, part: List[Dict[str, Any]]) -> float:
            return float(sum(r[key] for r in part) / len(part))

        return {f'loss_first{suffix}': mean('loss', rows[:n_first]),
                f'loss_last{suffix}': mean('loss', rows[-n_last:])}

    def measure(self, pretrain_dir: str) -> Dict[str, float]:
        rows = logged_records(pretrain_dir)
        if not rows:
            raise ValueError(f'no logged loss under {pretrain_dir}')
        out = self._windows(rows)
        n_last = max(1, int(len(rows) * self.last))
        for term in self.terms:
            out[f'{term}_last'] = float(
                sum(r[term] for r in rows[-n_last:]) / n_last)
        if self.after_epoch is not None:
            after = [r for r in rows if r['epoch'] > self.after_epoch]
            if after:
                out.update(self._windows(after, '_t'))
        return out

    def __call__(self, run: Any) -> Dict[str, Any]:
        return self.measure(run.pretrain_dir)


@dataclass(frozen=True)
class LinearProbeRun:
    """Linear probe as the Runner trains it: ``tools/train.py`` on a linear
    ``config`` from a backbone checkpoint, then ``tools/test.py``; its test
    top-1 (%) as ``key``. Files under ``<cell>/linear*``.

    Attributes:
        config (str): The linear-probe config.
        epochs (int): Its epochs (the cosine schedule follows them).
        images (int): First N training images (0: all).
        key (str): Name of the result.
    """
    config: str
    epochs: int = 10
    images: int = 0
    key: str = 'linear'
    name: str = 'linear_probe'

    def run(self, run_dir: str, checkpoint: str, seed: int) -> float:
        from .runner import run_logged
        ep = self.epochs
        train = [sys.executable, 'tools/train.py', self.config,
                 '--work-dir', osp.join(run_dir, 'linear'), '--no-validate',
                 '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={checkpoint}',
                 f'randomness.seed={seed}', f'train_cfg.max_epochs={ep}',
                 f'param_scheduler.1.T_max={max(ep - 1, 1)}',
                 f'param_scheduler.1.end={ep}',
                 f'default_hooks.checkpoint.interval={ep}']
        if self.images:
            train.append(f'train_dataloader.dataset.indices={self.images}')
        run_logged(train, osp.join(run_dir, 'linear.log'))
        test = [sys.executable, 'tools/test.py', self.config,
                osp.join(run_dir, 'linear', f'epoch_{ep}.pth'),
                '--work-dir', osp.join(run_dir, 'linear_test')]
        out, _ = run_logged(test, osp.join(run_dir, 'linear_test.log'))
        return last_val_top1(out)

    def __call__(self, run: Any) -> Dict[str, Any]:
        return {self.key: self.run(run.run_dir, run.checkpoint(),
                                   run.cell.seed)}
