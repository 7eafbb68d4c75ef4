"""Evaluators of the experiment harness that read a run's files."""
import json
import os

import pytest

from mmsbam.experiments.evaluators import (LossWindows, last_val_top1,
                                           logged_records)


def _log(pretrain_dir, stamp, records):
    path = os.path.join(pretrain_dir, stamp, 'vis_data')
    os.makedirs(path)
    with open(os.path.join(path, 'scalars.json'), 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')


def _rec(it, loss, epoch):
    return dict(iter=it, epoch=epoch, loss=loss, loss_rc=loss / 2, lr=0.1)


def test_loss_windows_merge_a_resumed_run(tmp_path):
    d = str(tmp_path)
    # first run logged iterations 1..6, was killed; the resumed run
    # repeats 5..6 (from the last checkpoint) and goes on to 10
    _log(d, '20260101_000000', [_rec(i, 10.0 + i, 1 + (i > 5))
                                for i in range(1, 7)])
    _log(d, '20260101_010000', [_rec(i, float(i), 1 + (i > 5))
                                for i in range(5, 11)]
         + [dict(iter=10, epoch=2, accuracy=1.0)])  # no loss: skipped
    rows = logged_records(d)
    assert [r['iter'] for r in rows] == list(range(1, 11))
    assert rows[4]['loss'] == 5.0  # the resumed run's record wins
    out = LossWindows(first=0.2, last=0.3, terms=('loss_rc', ),
                      after_epoch=1).measure(d)
    assert out['loss_first'] == pytest.approx((11 + 12) / 2)
    assert out['loss_last'] == pytest.approx((8 + 9 + 10) / 3)
    assert out['loss_rc_last'] == pytest.approx((8 + 9 + 10) / 6)
    # epoch 2 holds iterations 6..10: windows of 1 and 1 record
    assert out['loss_first_t'] == pytest.approx(6.0)
    assert out['loss_last_t'] == pytest.approx(10.0)
    assert 'loss_first_t' not in LossWindows().measure(d)


def test_loss_windows_without_records_is_an_error(tmp_path):
    with pytest.raises(ValueError, match='no logged loss'):
        LossWindows().measure(str(tmp_path))


def test_last_val_top1_reads_the_last_pass():
    log = ('Epoch(val) [3][10/10]  accuracy/top1: 41.2500  data_time: 0.1\n'
           'Epoch(test) [10/10]    accuracy/top1: 43.5000  data_time: 0.1\n')
    assert last_val_top1(log) == 43.5
    with pytest.raises(RuntimeError):
        last_val_top1('no accuracy here')
