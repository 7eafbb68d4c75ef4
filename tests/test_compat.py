"""mmsbam.compat: MMEngine checkpoints under torch's weights-only loader,
and the collate_fn ``_scope_`` fix."""
import builtins
import collections
import io
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

import mmsbam
from mmsbam.compat import allow_mmengine_checkpoints, strip_collate_scope


def _checkpoint_like():
    """What MMEngine's CheckpointHook saves besides weights: a message hub
    holding HistoryBuffers (numpy arrays inside) and numpy scalars."""
    loss = HistoryBuffer()
    for v in (4.0, 2.0, 3.0):
        loss.update(v)
    lr = HistoryBuffer([np.float64(0.1), np.float64(0.2)], [1, 1])
    return dict(
        meta=dict(epoch=np.int64(3), iter=np.int32(120),
                  best=np.float32(0.25), seed=np.uint8(7)),
        state_dict=collections.OrderedDict(w=torch.arange(4.0)),
        message_hub=dict(log_scalars={'train/loss': loss, 'train/lr': lr},
                         runtime_info=dict(arr=np.arange(6).reshape(2, 3),
                                           mask=np.array([True, False]),
                                           half=np.ones(3, np.float16))))


def _roundtrip(obj, **load_kwargs):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, **load_kwargs)


def test_history_buffer_checkpoint_loads_weights_only():
    allow_mmengine_checkpoints()  # idempotent; mmsbam's import did it
    out = _roundtrip(_checkpoint_like())  # weights_only defaults to True
    loss = out['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss, HistoryBuffer)
    # statistics methods still resolve after loading
    assert loss.mean() == pytest.approx(3.0)
    assert loss.current() == pytest.approx(3.0)
    assert loss.max() == pytest.approx(4.0)
    assert loss.min() == pytest.approx(2.0)
    assert loss.mean(2) == pytest.approx(2.5)
    assert out['message_hub']['log_scalars']['train/lr'].current() == \
        pytest.approx(0.2)
    loss.update(10.0)  # still a working buffer
    assert loss.current() == 10.0
    info = out['message_hub']['runtime_info']
    np.testing.assert_array_equal(info['arr'], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(info['mask'], [True, False])
    assert info['half'].dtype == np.float16
    assert out['meta']['epoch'] == 3 and out['meta']['iter'] == 120
    assert out['meta']['best'] == np.float32(0.25)
    assert torch.equal(out['state_dict']['w'], torch.arange(4.0))


def test_fresh_process_needs_fix_and_loads_with_it(tmp_path):
    """What ``--resume`` does: a new interpreter that has created no
    HistoryBuffer yet loads a saved checkpoint. Without the fix the safe
    loader refuses it; with the fix (compat.py loaded on its own, to skip
    importing mmpretrain) it loads and the statistics work."""
    path = tmp_path / 'epoch_3.pth'
    torch.save(_checkpoint_like(), path)
    code = textwrap.dedent('''
        import importlib.util, pickle, sys, torch
        path, compat_file = sys.argv[1:]
        try:
            torch.load(path)
            print('LOADED-WITHOUT')
        except pickle.UnpicklingError:
            print('REFUSED-WITHOUT')
        spec = importlib.util.spec_from_file_location('compat', compat_file)
        compat = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(compat)
        compat.allow_mmengine_checkpoints()
        hub = torch.load(path)['message_hub']['log_scalars']
        loss = hub['train/loss']
        print('STATS', loss.mean(), loss.max(), loss.min(), loss.current())
    ''')
    compat_file = sys.modules['mmsbam.compat'].__file__
    proc = subprocess.run([sys.executable, '-c', code, str(path), compat_file],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'REFUSED-WITHOUT' in proc.stdout
    assert 'STATS 3.0 4.0 2.0 3.0' in proc.stdout


class _GetattrOn:
    """Pickles as ``builtins.getattr(obj, name)``."""

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return (builtins.getattr, (self.obj, self.name))


@pytest.mark.parametrize('obj, name', [
    (collections.OrderedDict, 'fromkeys'),
    (HistoryBuffer, '__init__'),
    (HistoryBuffer, 'update'),
    (HistoryBuffer, 'register_statistics'),
])
def test_other_getattr_refused(obj, name):
    with pytest.raises(pickle.UnpicklingError):
        _roundtrip({'x': _GetattrOn(obj, name)})


def test_getattr_refused_in_raw_pickle():
    """Same with a hand-assembled pickle (no torch.save involved)."""
    # GLOBAL builtins getattr, GLOBAL collections OrderedDict, 'fromkeys',
    # TUPLE2, REDUCE, STOP
    payload = (b'\x80\x02cbuiltins\ngetattr\nccollections\nOrderedDict\n'
               b'X\x08\x00\x00\x00fromkeysq\x00\x86R.')
    assert pickle.loads(payload) == collections.OrderedDict.fromkeys
    with pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(payload), weights_only=True)


def test_statistics_getattr_still_allowed():
    """The allowed form resolves exactly to HistoryBuffer's methods."""
    out = _roundtrip({'m': _GetattrOn(HistoryBuffer, 'mean')})
    assert out['m'] is HistoryBuffer.mean


def test_arbitrary_globals_still_refused():
    """Only the listed objects were added: e.g. os.system stays refused."""
    import os

    class Evil:

        def __reduce__(self):
            return (os.system, ('true', ))

    with pytest.raises(pickle.UnpicklingError):
        _roundtrip({'x': Evil()})


def test_mmsbam_import_registers_compat():
    assert mmsbam.allow_mmengine_checkpoints is allow_mmengine_checkpoints
    safe = torch.serialization.get_safe_globals()
    flat = [g[0] if isinstance(g, tuple) else g for g in safe]
    assert HistoryBuffer in flat


def _loader(**kwargs):
    return dict(batch_size=2, dataset=dict(type='X'), **kwargs)


@pytest.mark.parametrize('as_config', [False, True])
def test_strip_collate_scope(as_config):
    cfg = dict(
        train_dataloader=_loader(
            collate_fn=dict(type='default_collate', _scope_='mmpretrain')),
        val_dataloader=_loader(
            collate_fn=dict(type='pseudo_collate', _scope_='mmpretrain')),
        test_dataloader=_loader(collate_fn=dict(type='default_collate')),
        model=dict(type='MAE', _scope_='mmpretrain'))
    if as_config:
        cfg = Config(cfg)
    strip_collate_scope(cfg)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert '_scope_' not in cfg[key]['collate_fn']
        assert 'type' in cfg[key]['collate_fn']
    assert cfg['train_dataloader']['collate_fn']['type'] == 'default_collate'
    assert cfg['val_dataloader']['collate_fn']['type'] == 'pseudo_collate'
    # nothing else touched
    assert cfg['model']['_scope_'] == 'mmpretrain'
    assert cfg['train_dataloader']['batch_size'] == 2


def test_strip_collate_scope_tolerates_missing_parts():
    cfg = dict(train_dataloader=_loader(), val_dataloader=None,
               test_dataloader=_loader(collate_fn='default_collate'))
    strip_collate_scope(cfg)  # no collate_fn dict anywhere: no error
    assert cfg['test_dataloader']['collate_fn'] == 'default_collate'
    assert 'collate_fn' not in cfg['train_dataloader']
    strip_collate_scope(dict())


def test_adjust_hue_negative_factor_under_numpy2():
    """mmcv's pillow ``adjust_hue`` with a negative factor (``ColorJitter``
    draws them) works and equals a cyclic hue shift of the opposite sign's
    complement: shifting by -h then +h restores the hue channel."""
    import mmcv
    from PIL import Image

    import mmsbam  # noqa: F401  (applies the fix)
    img = np.random.RandomState(0).randint(0, 255, (16, 16, 3), np.uint8)
    out = mmcv.adjust_hue(img, -0.1, backend='pillow')
    assert out.shape == img.shape and out.dtype == np.uint8

    def hue(bgr):
        return np.array(Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]),
                                        'RGB').convert('HSV'))[..., 0]
    shift = (hue(out).astype(int) - hue(img).astype(int)) % 256
    # int(-0.1 * 255) = -25: the hue moves by -25 mod 256 (pillow's HSV
    # round trip may move single pixels by one step)
    assert np.mean(np.abs(shift - 231) <= 1) > 0.95
    up = mmcv.adjust_hue(img, 0.1, backend='pillow')  # mmcv's own path
    shift = (hue(up).astype(int) - hue(img).astype(int)) % 256
    assert np.mean(np.abs(shift - 25) <= 1) > 0.95
