"""``SBAMHook``: warm-up schedule (also across ``--resume``), the ``sbam/``
scalars in the JSON log, the mask picture, maskers anywhere in the model,
and refusing models without one.

End-to-end tests run ``tools/train.py`` as a subprocess, as a user does, on
a 32-image slice of Fashion-MNIST with batch 16 (2 iterations per epoch),
like ``test_runner.py``. The rest are in-process with a tiny MAE.
"""
import glob
import json
import os.path as osp
import re
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger

from conftest import _run_tool
from mmsbam.engine.hooks import SBAMHook
from mmsbam.masking import masking_statistics

CONFIG = 'configs/fmnist/sbam-warmup_vit-tiny-p4_1xb256-5e_fmnist.py'
TINY_DATA = [
    'train_dataloader.dataset.indices=32', 'train_dataloader.batch_size=16',
    'default_hooks.logger.interval=1'
]
SBAM_KEYS = {
    'sbam/ratio_mean', 'sbam/ratio_min', 'sbam/ratio_max',
    'sbam/salience_masked', 'sbam/salience_visible', 'sbam/enabled'
}


def train(work_dir, *options, resume=None, check=True):
    """``tools/train.py CONFIG`` with the tiny data; returns the process."""
    args = [CONFIG, '--work-dir', work_dir]
    if resume:
        args += ['--resume', resume]
    return _run_tool('tools/train.py', *args, '--cfg-options', *TINY_DATA,
                     *options, check=check)


def scalars(work_dir):
    """Records of the run's ``vis_data/scalars.json`` (LocalVisBackend)."""
    files = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return [json.loads(line) for line in f if line.strip()]


def enabled_by_step(records):
    return {r['step']: r['sbam/enabled'] for r in records
            if 'sbam/enabled' in r}


pytestmark = pytest.mark.usefixtures('fashion_mnist')


@pytest.fixture(scope='module')
def warmup_run(tmp_path_factory):
    """2 epochs, random masking in the first (warmup_epochs=1), a picture
    every 2 iterations. Returns ``(work_dir, output)``."""
    work_dir = str(tmp_path_factory.mktemp('sbam_hook'))
    proc = train(work_dir, 'train_cfg.max_epochs=2',
                 'custom_hooks.0.warmup_epochs=1',
                 'custom_hooks.0.vis_interval=2')
    return work_dir, proc.stdout


# ---------------------------------------------------------------- schedule
def test_switches_after_warmup_epoch(warmup_run):
    work_dir, out = warmup_run
    # steps 1-2 are epoch 1 (random), 3-4 epoch 2 (SBAM)
    assert enabled_by_step(scalars(work_dir)) == {1: 0, 2: 0, 3: 1, 4: 1}
    assert re.search(r'SBAMHook: training starts at epoch 1, iter 1 with '
                     r'random masking', out), out[-3000:]
    switches = re.findall(r'SBAMHook: epoch (\d+): random masking -> SBAM',
                          out)
    assert switches == ['2']
    # the backbone really masked at random, then with SBAM
    assert 'SBAM first batch of this mode: RandomMaskGenerator()' in out
    text = out[out.index('random masking -> SBAM'):]
    # ... and reported the SBAM mode's first batch after the switch too
    assert 'SBAM first batch of this mode: SalienceMaskGenerator' in text
    assert re.search(r'Epoch\(train\) \[2\]\[1/2\].*sbam/enabled: 1\.0000',
                     text)


def test_resume_after_switch_keeps_sbam(warmup_run, tmp_path):
    src = osp.join(warmup_run[0], 'epoch_1.pth')
    out = train(str(tmp_path), 'train_cfg.max_epochs=3',
                'custom_hooks.0.warmup_epochs=1',
                'custom_hooks.0.vis_interval=0', resume=src).stdout
    assert re.search(r'resumed epoch: 1, iter: 2', out), out[-3000:]
    assert re.search(r'SBAMHook: training resumes at epoch 2, iter 3 with '
                     r'SBAM', out), out[-3000:]
    assert enabled_by_step(scalars(str(tmp_path))) == {
        3: 1, 4: 1, 5: 1, 6: 1}
    assert '-> SBAM' not in out  # no switch: SBAM from the first iteration
    assert not glob.glob(osp.join(str(tmp_path), '*', 'vis_data',
                                  'vis_image', '*.png'))


def test_resume_before_switch_switches_on_schedule(warmup_run, tmp_path):
    src = osp.join(warmup_run[0], 'epoch_1.pth')
    out = train(str(tmp_path), 'train_cfg.max_epochs=3',
                'custom_hooks.0.warmup_epochs=2',
                'custom_hooks.0.vis_interval=0', resume=src).stdout
    assert re.search(r'SBAMHook: training resumes at epoch 2, iter 3 with '
                     r'random masking', out), out[-3000:]
    # epoch index 1 (steps 3-4) random, epoch index 2 (steps 5-6) SBAM
    assert enabled_by_step(scalars(str(tmp_path))) == {
        3: 0, 4: 0, 5: 1, 6: 1}
    assert re.findall(r'SBAMHook: epoch (\d+): random masking -> SBAM',
                      out) == ['3']


def test_schedule_by_epoch_and_iter():
    by_epoch = SBAMHook(warmup_epochs=2)
    assert [by_epoch.sbam_enabled_at(e, 100) for e in range(4)] == [
        False, False, True, True]
    by_iter = SBAMHook(warmup_iters=3)
    assert [by_iter.sbam_enabled_at(5, i) for i in range(5)] == [
        False, False, False, True, True]
    assert SBAMHook().sbam_enabled_at(0, 0)


@pytest.mark.parametrize('kwargs, words', [
    (dict(warmup_epochs=1, warmup_iters=10), ['warmup_epochs',
                                              'warmup_iters', 'not both']),
    (dict(warmup_epochs=-1), ['warmup_epochs']),
    (dict(warmup_iters=1.5), ['warmup_iters']),
    (dict(interval=0), ['interval']),
    (dict(vis_interval=-5), ['vis_interval']),
    (dict(vis_images=0), ['vis_images']),
])
def test_bad_arguments_are_refused(kwargs, words):
    with pytest.raises(ValueError) as err:
        SBAMHook(**kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)


# -------------------------------------------------------------- statistics
def test_sbam_scalars_in_json_log(warmup_run):
    work_dir, out = warmup_run
    records = scalars(work_dir)
    assert len(records) == 4
    for record in records:
        keys = {k for k in record if 'sbam' in k}
        assert keys == SBAM_KEYS  # exactly these, each starting 'sbam/'
        # 49 tokens, 12 visible (MAE's rounding): 37/49 masked
        for k in ('sbam/ratio_mean', 'sbam/ratio_min', 'sbam/ratio_max'):
            assert record[k] == pytest.approx(37 / 49, abs=1e-6)
        for k in ('sbam/salience_masked', 'sbam/salience_visible'):
            assert 0.0 <= record[k] <= 1.0
    # SBAM masks the salient tokens; random masking does not prefer them
    sbam = [r for r in records if r['sbam/enabled'] == 1]
    assert all(r['sbam/salience_masked'] > r['sbam/salience_visible']
               for r in sbam)
    assert re.search(r'Epoch\(train\) \[1\]\[1/2\].*sbam/ratio_mean: 0\.7551'
                     r'.*sbam/enabled: 0\.0000', out)


def test_masking_statistics_by_hand():
    salience = torch.tensor([[0.0, 0.2, 0.8, 1.0], [0.5, 0.5, 0.1, 0.3]])
    mask = torch.tensor([[0., 0., 1., 1.], [1., 0., 0., 0.]])
    stats = masking_statistics(salience, mask)
    assert stats['ratio_mean'] == pytest.approx(0.375)
    assert stats['ratio_min'] == pytest.approx(0.25)
    assert stats['ratio_max'] == pytest.approx(0.5)
    assert stats['salience_masked'] == pytest.approx((0.8 + 1.0 + 0.5) / 3)
    assert stats['salience_visible'] == pytest.approx(
        (0.0 + 0.2 + 0.5 + 0.1 + 0.3) / 5)


# ---------------------------------------------------------------- pictures
def test_mask_pictures_written(warmup_run):
    from PIL import Image

    from mmsbam.visualization import draw_masking_figure
    work_dir, _ = warmup_run
    pngs = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'vis_image', '*.png')))
    assert [osp.basename(p) for p in pngs] == [
        'sbam_masks_2.png', 'sbam_masks_4.png'
    ]
    # the layout of 4 images of 28 px, 49 patches, one mask column and a
    # reconstruction (the size does not depend on the pixel values)
    expected = draw_masking_figure(
        np.zeros((4, 28, 28, 3), np.uint8), np.zeros((4, 49)),
        OrderedDict(mask=np.zeros((4, 49))),
        reconstructions=np.zeros((4, 28, 28, 3), np.uint8),
        ratios=dict(mask=[0.75] * 4), title='t').shape
    for path in pngs:
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.mode == 'RGB'
            pixels = np.asarray(img)
        assert pixels.shape == expected
        assert pixels.std() > 10  # not blank


class _Visualizer:

    def __init__(self):
        self.images = []

    def add_image(self, name, image, step=0):
        self.images.append((name, image, step))


def _stub_runner(model, **kwargs):
    runner = SimpleNamespace(
        model=model, visualizer=_Visualizer(), epoch=0, iter=5,
        logger=MMLogger.get_current_instance(), hooks=[],
        train_loop=None, message_hub=None)
    runner.__dict__.update(kwargs)
    return runner


def _batch(n=6, size=32):
    g = torch.Generator().manual_seed(0)
    return dict(
        inputs=torch.randint(0, 256, (n, 1, size, size), generator=g,
                             dtype=torch.uint8),
        data_samples=[None] * n)


def test_picture_leaves_training_untouched(build_mae):
    """Drawing restores the random stream and train/eval modes and keeps
    the masker's record; the picture reaches the visualizer."""
    mae = build_mae()
    mae.train()
    runner = _stub_runner(mae)
    hook = SBAMHook(vis_images=3)
    hook.before_train(runner)
    batch = _batch()
    mae.loss(mae.data_preprocessor(batch)['inputs'], None)  # trains
    mae.neck.eval()  # a module left in eval on purpose stays so
    before = mae.backbone.masker.last_masking
    modes = [m.training for m in mae.modules()]
    state = torch.get_rng_state()
    np_state = np.random.get_state()
    image = hook.draw(runner, batch)
    assert torch.equal(torch.rand(8), torch.rand(8, generator=torch.Generator(
    ).set_state(state)))
    assert np.random.get_state()[2] == np_state[2]
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert [m.training for m in mae.modules()] == modes
    assert mae.backbone.masker.last_masking is before
    assert mae.backbone.masker.sbam_enabled is True
    (name, logged, step), = runner.visualizer.images
    assert name == 'sbam_masks' and step == 6 and logged is image
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_after_train_iter_logs_statistics_before_picture(build_mae):
    """Statistics come from the training forward, not the picture's."""
    from mmengine.logging import MessageHub
    mae = build_mae()
    hub = MessageHub.get_instance('test_sbam_hook_stats')
    runner = _stub_runner(
        mae, message_hub=hub, iter=1,
        train_dataloader=list(range(2)))  # 2 batches: batch_idx 1 is last
    hook = SBAMHook(interval=1, vis_interval=2, vis_images=2)
    hook.before_train(runner)
    with torch.no_grad():
        mae.backbone(torch.randn(6, 1, 32, 32))
    record = mae.backbone.masker.last_masking
    hook.after_train_iter(runner, 1, _batch(), None)
    assert len(runner.visualizer.images) == 1
    assert mae.backbone.masker.last_masking is record
    expected = masking_statistics(record.salience, record.mask)
    for key, value in expected.items():
        assert hub.get_scalar(f'train/sbam/{key}').current() == \
            pytest.approx(value)
    assert hub.get_scalar('train/sbam/enabled').current() == 1.0


# ----------------------------------------------------------------- refusal
def test_refuses_stock_maevit_in_process(build_backbone):
    model = torch.nn.Module()
    model.backbone = build_backbone('MAEViT')
    with pytest.raises(TypeError) as err:
        SBAMHook().before_train(_stub_runner(model))
    msg = str(err.value)
    assert 'MAEViT' in msg and 'SBAMViT' in msg
    assert 'no SalienceMasker' in msg


def test_refuses_stock_maevit_through_train_tool(tmp_path):
    proc = train(str(tmp_path), 'train_cfg.max_epochs=1',
                 'model.backbone.type=MAEViT', check=False)
    assert proc.returncode != 0
    assert re.search(r'TypeError: SBAMHook found no SalienceMasker in the '
                     r'model \(MAE with backbone MAEViT\).*SBAMViT',
                     proc.stdout), proc.stdout[-3000:]
    assert not osp.exists(osp.join(str(tmp_path), 'epoch_1.pth'))


def test_pictures_do_not_change_training(warmup_run, tmp_path):
    """The same run without pictures has bit-identical losses."""
    train(str(tmp_path), 'train_cfg.max_epochs=2',
          'custom_hooks.0.warmup_epochs=1', 'custom_hooks.0.vis_interval=0')
    losses = [r['loss'] for r in scalars(str(tmp_path))]
    assert losses == [r['loss'] for r in scalars(warmup_run[0])]


def test_warmup_epochs_refused_for_iter_based_loop(build_mae):
    from mmengine.runner import IterBasedTrainLoop
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(ValueError, match='warmup_iters'):
        SBAMHook(warmup_epochs=1).before_train(
            _stub_runner(build_mae(), train_loop=loop))
    SBAMHook(warmup_iters=1).before_train(  # fine
        _stub_runner(build_mae(), train_loop=loop))


# ------------------------------------------------ maskers anywhere
class _TwoMaskerModel(torch.nn.Module):
    """No backbone at all: one masker deep in a neck, one at the top (as a
    teacher-student method may have)."""

    def __init__(self):
        super().__init__()
        from mmpretrain.models import SelfSupDataPreprocessor
        from mmsbam import SalienceMasker
        self.data_preprocessor = SelfSupDataPreprocessor(
            mean=[127.5], std=[127.5])
        self.neck = torch.nn.Module()
        self.neck.masker = SalienceMasker(mask_ratio=0.5)
        self.student_masker = SalienceMasker(
            mask_ratio=0.75, amr=dict(ratio_var=0.1))

    def step(self, x):
        tokens = x.flatten(2).unflatten(2, (64, 16)).squeeze(1)  # (B, 64, 16)
        return self.neck.masker(tokens), self.student_masker(tokens)


def test_hook_drives_maskers_that_are_not_the_backbone():
    from mmengine.logging import MessageHub
    model = _TwoMaskerModel()
    hub = MessageHub.get_instance('test_sbam_hook_two_maskers')
    runner = _stub_runner(model, message_hub=hub, iter=0,
                          train_dataloader=list(range(4)))
    hook = SBAMHook(warmup_iters=1, interval=1, vis_interval=1,
                    vis_images=2)
    assert list(hook.maskers(runner)) == ['neck.masker', 'student_masker']
    hook.before_train(runner)
    maskers = [model.neck.masker, model.student_masker]
    assert [m.sbam_enabled for m in maskers] == [False, False]  # warm-up
    batch = _batch()
    model.step(model.data_preprocessor(batch)['inputs'])
    hook.after_train_iter(runner, 0, batch, None)
    for name, masker in zip(('neck.masker', 'student_masker'), maskers):
        record = masker.last_masking
        assert record.sbam_enabled is False
        expected = masking_statistics(record.salience, record.mask)
        for key, value in expected.items():
            assert hub.get_scalar(
                f'train/sbam/{name}/{key}').current() == pytest.approx(value)
        assert hub.get_scalar(f'train/sbam/{name}/enabled').current() == 0.0
    assert hub.get_scalar('train/sbam/neck.masker/ratio_mean').current() \
        == 0.5
    (name, image, step), = runner.visualizer.images  # first masker's masks
    assert name == 'sbam_masks' and step == 1 and image.ndim == 3
    runner.iter = 1
    hook.before_train_iter(runner, 1, batch)
    assert [m.sbam_enabled for m in maskers] == [True, True]
