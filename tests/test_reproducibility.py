"""Exact resume (``RandomStateHook``) and determinism (same seed, same masks).

The end-to-end tests (``slow``) run ``tools/train.py`` as subprocesses on
the 32-image Fashion-MNIST slice, 2 iterations per epoch, with
``tests/dist_probe.py``'s hook recording every iteration's mask and loss.
"""
import os.path as osp
import random
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed

from dist_probe import (ROOT, probe, probe_config, probes, train,
                        train_killed)
from mmsbam.engine.hooks.random_state_hook import (CHECKPOINT_KEY,
                                                   RandomStateHook,
                                                   get_random_state,
                                                   set_random_state)


def draws():
    """One number from each global stream."""
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(),
            random.random())


def fake_runner(iteration=0):
    return SimpleNamespace(iter=iteration, epoch=0, logger=mock.MagicMock())


def saved_entry(hook, iteration=2):
    checkpoint = dict(meta=dict(epoch=1, iter=iteration))
    hook.before_save_checkpoint(fake_runner(iteration), checkpoint)
    return checkpoint


# ------------------------------------------------------------------- unit
def test_set_random_state_restores_torch_numpy_and_python():
    set_random_seed(3)
    state = get_random_state()
    first = draws()
    set_random_seed(4)
    assert draws() != first
    assert set_random_state(state) == []
    assert draws() == first


def test_checkpoint_entry_loads_weights_only_without_allowlist(tmp_path):
    """The entry holds tensors and plain Python values only: torch's own
    weights_only loader reads it, no mmsbam allowlist entry needed."""
    set_random_seed(5)
    checkpoint = saved_entry(RandomStateHook())
    first = draws()
    path = str(tmp_path / 'ckpt.pth')
    torch.save(checkpoint, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    loaded = torch.load(path, weights_only=True)
    entry = loaded[CHECKPOINT_KEY]
    assert entry['world_size'] == 1 and entry['iter'] == 2
    assert len(entry['states']) == 1
    set_random_seed(6)
    set_random_state(entry['states'][0])
    assert draws() == first


def test_resume_restores_states_at_first_train_epoch():
    set_random_seed(7)
    hook = RandomStateHook()
    checkpoint = saved_entry(hook, iteration=2)
    expected = draws()
    set_random_seed(0)  # what Runner.resume / a new process does
    hook.after_load_checkpoint(fake_runner(), checkpoint)
    hook.before_train_epoch(fake_runner(iteration=2))
    assert draws() == expected
    set_random_seed(0)
    hook.before_train_epoch(fake_runner(iteration=4))  # only once
    assert draws() != expected


def test_load_from_restores_nothing():
    """``load_from`` (training from iter 0) keeps the seeded state."""
    set_random_seed(7)
    hook = RandomStateHook()
    checkpoint = saved_entry(hook, iteration=2)
    set_random_seed(0)
    seeded = get_random_state()
    hook.after_load_checkpoint(fake_runner(), checkpoint)
    hook.before_train_epoch(fake_runner(iteration=0))
    set_random_seed(0)
    expected = draws()
    set_random_state(seeded)
    assert draws() == expected


@pytest.mark.parametrize('entry', ['other_world_size', 'missing'])
def test_unusable_entry_warns_and_keeps_seeded_state(entry):
    set_random_seed(7)
    hook = RandomStateHook()
    checkpoint = saved_entry(hook, iteration=2)
    if entry == 'missing':
        del checkpoint[CHECKPOINT_KEY]
    else:  # saved by 2 processes, resumed by 1
        states = checkpoint[CHECKPOINT_KEY]['states']
        checkpoint[CHECKPOINT_KEY].update(world_size=2, states=states * 2)
    set_random_seed(0)
    seeded = draws()
    set_random_seed(0)
    runner = fake_runner(iteration=2)
    hook.after_load_checkpoint(runner, checkpoint)
    hook.before_train_epoch(runner)
    assert draws() == seeded
    warning = runner.logger.warning.call_args[0][0]
    if entry == 'missing':
        assert 'has no random states' in warning
    else:
        assert '2 process(es), this run has 1' in warning
        assert 'not restored' in warning


def test_validation_does_not_move_training_streams():
    set_random_seed(8)
    expected = draws()
    hook = RandomStateHook()
    set_random_seed(8)
    hook.before_val(fake_runner())
    draws()  # what validation would consume
    hook.after_val(fake_runner())
    assert draws() == expected


@pytest.mark.parametrize('config', [
    'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py',
    'configs/fmnist/sbam-warmup_vit-tiny-p4_1xb256-5e_fmnist.py',
    'configs/fmnist/cmae_vit-tiny-p4_1xb256-5e_fmnist.py',
    'configs/fmnist/cmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py',
])
def test_fmnist_configs_use_random_state_hook(config):
    cfg = Config.fromfile(f'{ROOT}/{config}')
    assert 'RandomStateHook' in [h['type'] for h in cfg.custom_hooks]


# ------------------------------------------------ determinism, in process
MODES = {
    'sbm': dict(),
    'amr_sample': dict(amr=dict(mode='sample', ratio_var=0.2, delta=0.5)),
    'amr_batch': dict(amr=dict(mode='batch', ratio_var=0.2, delta=0.5)),
    'attention': dict(salience_source='attention', salience_layer=1),
    'random': 'random',  # masker.sbam_enabled=False (SBAMHook's warm-up)
}


@pytest.fixture
def deterministic_algorithms():
    """``deterministic=True`` turns on torch's deterministic algorithms
    process-wide; switch them off again for the other tests."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def _masks_and_losses(build_mae, kwargs, seed, steps=3):
    """Build the tiny MAE, seed as the Runner does (``set_random_seed``
    with ``deterministic=True``) and run ``steps`` training forwards."""
    model = build_mae(**({} if kwargs == 'random' else kwargs))
    if kwargs == 'random':
        model.backbone.masker.sbam_enabled = False
    model.train()
    images = torch.randn(4, 1, 32, 32,
                         generator=torch.Generator().manual_seed(123))
    set_random_seed(seed, deterministic=True)
    out = []
    for _ in range(steps):
        loss = model.loss(images, [])['loss']
        out.append((model.backbone.masker.last_masking.mask.clone(),
                    loss.detach().clone()))
    return out


@pytest.mark.parametrize('mode', list(MODES))
def test_same_seed_same_masks_and_losses(mode, build_mae,
                                         deterministic_algorithms):
    first = _masks_and_losses(build_mae, MODES[mode], seed=0)
    second = _masks_and_losses(build_mae, MODES[mode], seed=0)
    other = _masks_and_losses(build_mae, MODES[mode], seed=1)
    for (m1, l1), (m2, l2) in zip(first, second):
        assert torch.equal(m1, m2) and torch.equal(l1, l2)
    # successive steps draw new masks, and another seed other masks
    assert not torch.equal(first[0][0], first[1][0])
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(first, other))


# ------------------------------------------------------ end to end (slow)
@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    """2 epochs (4 iterations) in one go, with RandomStateHook."""
    tmp = tmp_path_factory.mktemp('uninterrupted')
    config = probe_config(tmp)
    train(config, tmp / 'run', 'train_cfg.max_epochs=2')
    return tmp, tmp / 'run'


def _assert_same_iterations(a, b, iterations, rank=0):
    for i in iterations:
        pa, pb = probe(a, i, rank), probe(b, i, rank)
        assert pa['sample_idx'] == pb['sample_idx'], i
        assert torch.equal(pa['mask'], pb['mask']), f'mask of iter {i}'
        assert torch.equal(pa['loss'], pb['loss']), \
            f'loss of iter {i}: {pa["loss"].item()!r} {pb["loss"].item()!r}'


def _assert_same_weights(a, b):
    sa = torch.load(f'{a}/epoch_2.pth', map_location='cpu')['state_dict']
    sb = torch.load(f'{b}/epoch_2.pth', map_location='cpu')['state_dict']
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.slow
def test_resume_is_bit_exact(uninterrupted, tmp_path):
    """Interrupted after epoch 1, resumed: epoch 2's masks, losses and the
    final weights equal the uninterrupted run's to the last bit."""
    config_dir, full = uninterrupted
    out = train(probe_config(config_dir), tmp_path, 'train_cfg.max_epochs=2',
                resume=str(full / 'epoch_1.pth')).stdout
    assert 'resumed epoch: 1, iter: 2' in out
    assert 'RandomStateHook: restored the random states of rank 0 of 1 ' \
           'saved at iter 2' in out
    assert probes(tmp_path) == [(0, 3), (0, 4)]
    _assert_same_iterations(full, tmp_path, [3, 4])
    _assert_same_weights(full, tmp_path)


@pytest.mark.slow
def test_resume_without_hook_draws_other_masks(uninterrupted, tmp_path):
    """Why the hook exists (and proof the comparison above can fail):
    MMEngine alone re-seeds on resume and draws other masks."""
    config_dir, full = uninterrupted
    config = probe_config(config_dir, random_state_hook=False,
                          name='no_hook.py')
    train(config, tmp_path, 'train_cfg.max_epochs=2',
          resume=str(full / 'epoch_1.pth'))
    assert probe(full, 3)['sample_idx'] == probe(tmp_path, 3)['sample_idx']
    assert not torch.equal(probe(full, 3)['mask'], probe(tmp_path, 3)['mask'])
    assert not torch.equal(probe(full, 3)['loss'], probe(tmp_path, 3)['loss'])


@pytest.mark.slow
def test_same_seed_same_run(uninterrupted, tmp_path):
    """Two runs with the same seed and deterministic=True: the same masks
    and losses at every iteration, and the same weights."""
    config_dir, full = uninterrupted
    train(probe_config(config_dir), tmp_path, 'train_cfg.max_epochs=2')
    assert probes(tmp_path) == probes(full) == [(0, i) for i in range(1, 5)]
    _assert_same_iterations(full, tmp_path, range(1, 5))
    _assert_same_weights(full, tmp_path)


PER_IMAGE_AMR = ['model.backbone.amr.mode=sample',
                 'model.backbone.temperature=64.0',  # spread: counts differ
                 'model.backbone.encoder_groups=2']


@pytest.mark.slow
def test_per_image_amr_resume_is_bit_exact(tmp_path):
    """Per-image AMR encoded in sub-batches of similar counts: interrupted
    after epoch 1 and resumed, epoch 2's masks, losses and the final
    weights equal the uninterrupted run's to the last bit."""
    config = probe_config(tmp_path)
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    train(config, full, 'train_cfg.max_epochs=2', *PER_IMAGE_AMR)
    train(config, resumed, 'train_cfg.max_epochs=2', *PER_IMAGE_AMR,
          resume=str(full / 'epoch_1.pth'))
    counts = {tuple(probe(full, i)['mask'].sum(1).tolist()) for i in (3, 4)}
    assert any(len(set(c)) > 1 for c in counts)  # images really differ
    _assert_same_iterations(full, resumed, [3, 4])
    _assert_same_weights(full, resumed)


IBOT_CONFIGS = {
    'ibot': f'{ROOT}/configs/fmnist/ibot_vit-tiny-p4_1xb128-5e_fmnist.py',
    'ibot-sbam': f'{ROOT}/configs/fmnist/'
    'ibot-sbam_vit-tiny-p4_1xb128-5e_fmnist.py',
}
IBOT_TEMP_HOOK = (
    "dict(type='iBOTTeacherTempHook', warmup_teacher_temp=0.04, "
    "teacher_temp=0.07, warmup_teacher_patch_temp=0.04, "
    "teacher_patch_temp=0.07, warmup_epochs=2)")
#: 3 epochs of 2 iterations (32 images per process, 16 per step) in which
#: every schedule moves: the LR warm-up (epoch 0) and cosine, the weight
#: decay and teacher momentum cosines, the teacher temperatures (CLS 0.04,
#: then 0.07; the patch one held at 0.04 one epoch longer by
#: pred_start_epoch), no masks and a frozen last layer in epoch 0.
IBOT_SCHEDULES = [
    'train_cfg.max_epochs=3', 'param_scheduler.1.end=3',
    'param_scheduler.2.end=3', 'optim_wrapper.freeze_last_layer_epochs=1',
    'model.mask_generator.pred_start_epoch=1'
]
#: (CLS, patch) teacher temperatures of epochs 0, 1, 2
IBOT_TEMPS = [(0.04, 0.04), (0.07, 0.04), (0.07, 0.07)]


def _last_checkpoint_is(name):

    def reached(work_dir):
        path = osp.join(str(work_dir), 'last_checkpoint')
        return osp.isfile(path) and open(path).read().strip().endswith(name)

    return reached


def _probe_written(iteration):
    return lambda work_dir: osp.isfile(
        osp.join(str(work_dir), 'probe', f'rank0_iter{iteration}.pt'))


#: When the killed run dies: in epoch 0 before any checkpoint (the next
#: launch starts afresh), right after epoch 1's checkpoint, in epoch 2
#: (after its first iteration).
KILL_MOMENTS = [_probe_written(1), _last_checkpoint_is('epoch_1.pth'),
                _probe_written(5)]


@pytest.mark.slow
@pytest.mark.parametrize('nproc', [1, 2])
@pytest.mark.parametrize('config', list(IBOT_CONFIGS))
def test_ibot_killed_three_times_ends_bit_exact(config, nproc, tmp_path):
    """iBoT and its SBAM twin, 1 or 2 processes, SIGKILLed at three moments
    and resumed each time with ``--resume``: every iteration's masks,
    losses and teacher temperatures, and the final weights and buffers
    (student, teacher and its EMA step count, both centres) equal those of
    an uninterrupted run to the last bit."""
    port = 29600 + 10 * list(IBOT_CONFIGS).index(config)
    path = probe_config(tmp_path, base=IBOT_CONFIGS[config],
                        extra_hooks=[IBOT_TEMP_HOOK])
    options = [*IBOT_SCHEDULES,
               f'train_dataloader.dataset.indices={32 * nproc}']
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    train(path, full, *options, nproc=nproc, port=port)
    for i, moment in enumerate(KILL_MOMENTS):
        train_killed(path, killed, *options, when=moment, resume='auto',
                     nproc=nproc, port=port + 1 + i)
    out = train(path, killed, *options, resume='auto', nproc=nproc,
                port=port + 4).stdout
    assert 'resumed epoch: 2, iter: 4' in out
    assert ('RandomStateHook: restored the random states of rank 0 of '
            f'{nproc} saved at iter 4') in out
    ranks_iters = [(r, i) for r in range(nproc) for i in range(1, 7)]
    assert probes(full) == probes(killed) == ranks_iters
    for rank in range(nproc):
        _assert_same_iterations(full, killed, range(1, 7), rank)
        for i in range(1, 7):
            a, b = probe(full, i, rank), probe(killed, i, rank)
            epoch = (i - 1) // 2
            assert a['epoch'] == b['epoch'] == epoch
            temps = (b['teacher_temp'], b['teacher_patch_temp'])
            assert (a['teacher_temp'], a['teacher_patch_temp']) == temps \
                == IBOT_TEMPS[epoch], i
            assert a['last_layer_frozen'] == b['last_layer_frozen'] \
                == (epoch == 0), i
            assert bool(a['mask'].any()) == (epoch > 0), i  # pred_start
    sa = torch.load(f'{full}/epoch_3.pth', map_location='cpu')['state_dict']
    sb = torch.load(f'{killed}/epoch_3.pth',
                    map_location='cpu')['state_dict']
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert int(sb['teacher.steps']) == 6
    assert sb['head.center'].abs().sum() > 0
    assert sb['head.patch_center'].abs().sum() > 0


CMAE_CONFIGS = {
    'cmae': f'{ROOT}/configs/fmnist/cmae_vit-tiny-p4_1xb256-5e_fmnist.py',
    'cmae-sbam':
    f'{ROOT}/configs/fmnist/cmae-sbam_vit-tiny-p4_1xb256-5e_fmnist.py',
}
CMAE_TWO_EPOCHS = ['train_cfg.max_epochs=2', 'param_scheduler.1.T_max=1',
                   'param_scheduler.1.end=2']


@pytest.mark.slow
@pytest.mark.parametrize('arm', list(CMAE_CONFIGS))
def test_cmae_resume_is_bit_exact(arm, tmp_path):
    """CMAE (random cells) and CMAE + SBAM interrupted after epoch 1 and
    resumed: the target encoder and projector, the EMA step count, the LR
    schedule, the shifted views and the cell masks continue exactly (same
    masks and losses in epoch 2, same final weights and buffers)."""
    config = probe_config(tmp_path, base=CMAE_CONFIGS[arm])
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    train(config, full, *CMAE_TWO_EPOCHS)
    out = train(config, resumed, *CMAE_TWO_EPOCHS,
                resume=str(full / 'epoch_1.pth')).stdout
    assert 'resumed epoch: 1, iter: 2' in out
    assert probes(resumed) == [(0, 3), (0, 4)]
    _assert_same_iterations(full, resumed, [3, 4])
    _assert_same_weights(full, resumed)
    state = torch.load(f'{full}/epoch_2.pth', map_location='cpu')
    assert int(state['state_dict']['teacher.steps']) == 4
    # 5 of 16 cells visible: the patch mask (CMAE) or the masker's cells
    visible = 20 if arm == 'cmae' else 5
    mask = probe(full, 4)['mask']
    assert torch.equal((mask == 0).sum(1), torch.full((16, ), visible))
