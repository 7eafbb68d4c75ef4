"""``mmsbam.analysis.bootmae_comparison``: the parts that need no training
(``tools/benchmarks/bootmae_comparison.py`` runs the rest)."""
import os.path as osp

from mmengine.config import Config, DictAction

from conftest import ROOT
from mmsbam.analysis.bootmae_comparison import (ARMS, pretrain_options,
                                                summarize)


def _merged(arm, epochs=2):
    cfg = Config.fromfile(osp.join(ROOT, ARMS[arm][0]))
    opts = pretrain_options(arm, epochs, seed=3, images=512)
    action = DictAction(option_strings=['--cfg-options'], dest='x')
    ns = type('NS', (), {})()
    action(None, ns, opts)
    cfg.merge_from_dict(ns.x)
    return cfg


def test_options_end_every_schedule_with_the_run():
    cfg = _merged('bootmae-sbam', epochs=2)
    assert cfg.train_cfg.max_epochs == 2
    assert cfg.param_scheduler[1].end == 2
    assert cfg.model.feature_ramp_epochs == 0.5  # a quarter of the run
    assert cfg.randomness.seed == 3
    assert cfg.train_dataloader.dataset.indices == 512
    assert cfg.optim_wrapper.optimizer.lr == 1.5e-3
    assert cfg.model.backbone.type == 'SBAMBootMAEViT'


def test_lr0_arms_differ_only_by_the_learning_rate():
    """LR 0 throughout: the base LR and the cosine's absolute eta_min."""
    a = _merged('bootmae').to_dict()
    b = _merged('bootmae-lr0').to_dict()
    assert b['optim_wrapper']['optimizer']['lr'] == 0.0
    assert b['param_scheduler'][1]['eta_min'] == 0.0  # an absolute floor
    b['optim_wrapper']['optimizer']['lr'] = a['optim_wrapper']['optimizer'][
        'lr']
    b['param_scheduler'][1]['eta_min'] = a['param_scheduler'][1]['eta_min']
    assert a == b


def test_summary_per_arm_over_seeds():
    runs = [dict(arm='bootmae', seed=s, knn_cls=60.0 + s, loss_last=1.0)
            for s in (0, 1)]
    runs.append(dict(arm='bootmae-lr0', seed=0, loss_last=2.0))
    summary = summarize(runs)
    assert summary['bootmae']['knn_cls']['mean'] == 60.5
    assert summary['bootmae']['knn_cls']['spread'] == 0.5
    assert list(summary['bootmae-lr0']) == ['loss_last']
