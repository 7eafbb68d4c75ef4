"""``mmsbam.analysis.ibot_comparison``: the parts that need no training
(schedule options, loss windows, aggregation, the table). The end-to-end
path (pre-training, teacher extraction, k-NN, linear probe) is what
``tools/benchmarks/ibot_comparison.py`` runs; its pieces are tested in
``tests/models/test_ibot.py`` and ``tests/test_runner.py``."""
import json

import pytest

from mmsbam.analysis.ibot_comparison import (ARMS, loss_windows,
                                             pretrain_options,
                                             render_markdown, summarize)


def test_arms_are_the_three_shipped_configs():
    from mmengine.config import Config

    from conftest import ROOT
    generators = {}
    for arm, path in ARMS.items():
        cfg = Config.fromfile(f'{ROOT}/{path}')
        generators[arm] = cfg.model.mask_generator
    assert generators['ibot'].type == 'iBOTBlockMaskGenerator'
    assert generators['ibot-sbam'].type == 'iBOTSalienceMaskGenerator'
    assert generators['ibot-sbam'].get('teacher_rows', 'all') == 'all'
    assert generators['ibot-clsrow'].teacher_rows == 'cls'


def test_pretrain_options_end_every_schedule_with_the_run():
    opts = pretrain_options(3, 1, 20000)
    assert 'train_cfg.max_epochs=3' in opts
    assert 'param_scheduler.1.end=3' in opts  # cosine LR
    assert 'param_scheduler.2.end=3' in opts  # weight decay
    assert 'randomness.seed=1' in opts
    assert 'train_dataloader.dataset.indices=20000' in opts
    assert not any('indices' in o for o in pretrain_options(3, 0, 0))


def test_loss_windows(tmp_path):
    folder = tmp_path / 'pretrain' / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    records = [dict(step=i, epoch=1 + (i > 10), loss=float(i))
               for i in range(1, 21)]
    records.insert(5, dict(step=5, lr=0.1))  # a record without loss
    (folder / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in records))
    w = loss_windows(str(tmp_path), warmup_epochs=1)
    assert w['loss_first'] == pytest.approx(1.5)  # first 2 of 20
    assert w['loss_last'] == pytest.approx(18.5)  # last 4 of 20
    assert w['loss_first_t'] == pytest.approx(11.0)  # epoch 2: first 1
    assert w['loss_last_t'] == pytest.approx(19.5)  # epoch 2: last 2


def test_summary_and_table():
    runs = [dict(arm='ibot', seed=s, knn=70.0 + s, linear=60.0, auc_all=0.5,
                 pretrain_s=100.0) for s in (0, 1)]
    runs += [dict(arm='ibot-sbam', seed=s, knn=71.0 + 2 * s, linear=61.0,
                  auc_all=0.7, pretrain_s=90.0) for s in (0, 1)]
    summary = summarize(runs)
    assert list(summary) == ['ibot', 'ibot-sbam']
    assert summary['ibot']['knn']['mean'] == pytest.approx(70.5)
    assert summary['ibot-sbam']['knn']['spread'] == pytest.approx(1.0)
    assert 'pretrain_s' not in summary['ibot']
    table = render_markdown(summary)
    assert table.splitlines()[0] == '| arm | knn | linear | auc_all |'
    assert '| ibot-sbam | 72.000 ± 1.000 | 61.000 ± 0.000 |' in table
