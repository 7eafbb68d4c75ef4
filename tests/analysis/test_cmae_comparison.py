"""``mmsbam.analysis.cmae_comparison``: the parts that need no training
(the pre-training and evaluation pieces are tested in
``tests/models/cmae/test_cmae.py`` and ``tests/test_reproducibility.py``)."""
import os.path as osp

import pytest
import torch

from conftest import ROOT
from mmsbam.analysis.cmae_comparison import (ARMS, encoder_features,
                                             pretrain_options, summarize)


def test_arms_are_the_fmnist_pair():
    assert set(ARMS) == {'cmae', 'cmae-sbam'}
    assert all(osp.isfile(osp.join(ROOT, p)) for p in ARMS.values())


def test_pretrain_options_end_the_cosine_with_the_run():
    opts = pretrain_options(2, 1, 7680)
    assert 'train_cfg.max_epochs=2' in opts
    assert 'param_scheduler.1.T_max=1' in opts
    assert 'param_scheduler.1.end=2' in opts
    assert 'randomness.seed=1' in opts
    assert 'train_dataloader.dataset.indices=7680' in opts
    assert not any('lr=' in o for o in opts)
    assert 'optim_wrapper.optimizer.lr=0.0' in pretrain_options(2, 1, 0, 0.0)


def test_summarize_separates_learning_rate_zero_controls():
    runs = [dict(arm='cmae', seed=s, lr0=False, knn=70.0 + s, linear=60.0,
                 loss_first=2.0, loss_last=1.0) for s in (0, 1)]
    runs.append(dict(arm='cmae', seed=0, lr0=True, loss_first=2.0,
                     loss_last=2.1))
    summary = summarize(runs)
    assert list(summary) == ['cmae', 'cmae (lr 0)']
    assert summary['cmae']['knn']['mean'] == pytest.approx(70.5)
    assert 'knn' not in summary['cmae (lr 0)']
    assert summary['cmae (lr 0)']['loss_last']['mean'] == 2.1


def test_encoder_features_are_mean_patch_and_class_tokens():
    class Backbone(torch.nn.Module):
        def forward(self, x, mask=None):
            assert mask is None
            return (x.flatten(1)[:, None, :4] * torch.arange(1., 4.)[
                None, :, None], )

    class Model(torch.nn.Module):
        backbone = Backbone()

        @staticmethod
        def data_preprocessor(data, training):
            assert not training
            return data

    from mmpretrain.structures import DataSample
    x = torch.randn(2, 1, 2, 2)
    samples = [DataSample().set_gt_label(i) for i in (3, 7)]
    avg, cls, labels = encoder_features(
        Model(), [dict(inputs=x, data_samples=samples)])
    flat = x.flatten(1)
    assert torch.allclose(cls, flat)
    assert torch.allclose(avg, 2.5 * flat)
    assert labels.tolist() == [3, 7]


def test_loss_windows_join_a_resumed_run(tmp_path):
    """A resumed run logs into a second directory: its records continue the
    first's (an iteration logged twice counts once, the later record)."""
    import json

    from mmsbam.analysis.cmae_comparison import loss_windows
    for name, iters in (('20260101_000000', range(1, 7)),
                        ('20260101_000100', range(6, 11))):
        d = tmp_path / 'pretrain' / name / 'vis_data'
        d.mkdir(parents=True)
        with open(d / 'scalars.json', 'w') as f:
            for i in iters:
                f.write(json.dumps(dict(iter=i, loss=float(i), loss_rc=1.0,
                                        loss_ct=float(i) - 1)) + '\n')
    out = loss_windows(str(tmp_path))
    assert out['loss_first'] == 1.0  # 10 records: first 1
    assert out['loss_last'] == 9.5  # last 2: iters 9, 10
    assert out['loss_ct_last'] == 8.5
