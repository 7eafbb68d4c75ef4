"""iBoT's teacher-temperature schedules (``IBOT.md`` section 1.3)."""
from types import SimpleNamespace

import pytest
from torch import nn

from mmpretrain.registry import HOOKS
from mmsbam.engine.hooks.ibot_teacher_temp_hook import (iBOTTeacherTempHook,
                                                        teacher_temp_at)


class _Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.teacher_temp = None
        self.teacher_patch_temp = None


class _Model(nn.Module):

    def __init__(self):
        super().__init__()
        self.head = _Head()


class _Logger:

    def __init__(self):
        self.messages = []

    def info(self, message):
        self.messages.append(message)


def _runner(model, epoch=0, it=0):
    return SimpleNamespace(model=model, epoch=epoch, iter=it, logger=_Logger())


def test_warmup_is_linear_over_30_epochs_then_constant():
    for e in range(30):
        want = 0.04 + 0.03 * e / 29
        assert teacher_temp_at(e, 0.04, 0.07, 30) == pytest.approx(want,
                                                                   abs=1e-15)
    assert teacher_temp_at(29, 0.04, 0.07, 30) == 0.07  # exactly
    for e in (30, 31, 100, 799):
        assert teacher_temp_at(e, 0.04, 0.07, 30) == 0.07


def test_no_warmup_gives_the_final_value_and_one_epoch_the_start_value():
    assert teacher_temp_at(0, 0.04, 0.07, 0) == 0.07
    # np.linspace(a, b, 1) == [a]: the official one-epoch table
    assert teacher_temp_at(0, 0.04, 0.07, 1) == 0.04
    assert teacher_temp_at(1, 0.04, 0.07, 1) == 0.07


def test_start_epoch_holds_the_warmup_value_then_shifts_the_warmup():
    for e in range(5):
        assert teacher_temp_at(e, 0.04, 0.07, 30, start_epoch=5) == 0.04
    for e in range(5, 35):
        assert teacher_temp_at(e, 0.04, 0.07, 30, start_epoch=5) == \
            pytest.approx(0.04 + 0.03 * (e - 5) / 29, abs=1e-15)
    assert teacher_temp_at(35, 0.04, 0.07, 30, start_epoch=5) == 0.07


def test_pred_start_epoch_delays_only_the_patch_temperature():
    hook = iBOTTeacherTempHook(0.04, 0.07, 0.04, 0.07, warmup_epochs=30)
    cls_temp, patch_temp = hook.temperatures(20, pred_start_epoch=10)
    assert cls_temp == pytest.approx(0.04 + 0.03 * 20 / 29)
    assert patch_temp == pytest.approx(0.04 + 0.03 * 10 / 29)
    assert hook.temperatures(9, pred_start_epoch=10)[1] == 0.04
    assert hook.temperatures(39, pred_start_epoch=10) == (0.07, 0.07)


@pytest.mark.parametrize('generator', [
    dict(type='iBOTBlockMaskGenerator', pred_start_epoch=10),
    dict(type='iBOTSalienceMaskGenerator', pred_start_epoch=10),
])
def test_pred_start_epoch_is_read_from_the_mask_generator(generator):
    """One setting: the generator's ``pred_start_epoch`` (no masks before
    it) also holds the patch temperature, through a DDP-like wrapper too."""
    from mmpretrain.registry import MODELS
    import mmsbam  # noqa: F401  (registers the generators)
    model = _Model()
    model.mask_generator = MODELS.build(generator)
    assert model.mask_generator.pred_start_epoch == 10
    hook = iBOTTeacherTempHook(0.04, 0.07, 0.04, 0.07, warmup_epochs=30)
    hook.before_train_epoch(_runner(nn.DataParallel(model), epoch=20))
    assert model.head.teacher_temp == pytest.approx(0.04 + 0.03 * 20 / 29)
    assert model.head.teacher_patch_temp == pytest.approx(0.04 + 0.03 * 10 /
                                                          29)
    hook.before_train_epoch(_runner(model, epoch=9))
    assert model.head.teacher_patch_temp == 0.04


def test_pred_start_epoch_is_refused_on_the_hook_and_with_iterations():
    with pytest.raises(ValueError, match='model.mask_generator.'
                       'pred_start_epoch'):
        iBOTTeacherTempHook(pred_start_epoch=10)
    from mmpretrain.registry import MODELS
    import mmsbam  # noqa: F401
    model = _Model()
    model.mask_generator = MODELS.build(
        dict(type='iBOTBlockMaskGenerator', pred_start_epoch=2))
    hook = iBOTTeacherTempHook(by_epoch=False)
    with pytest.raises(ValueError, match='pred_start_epoch=2, allowed with '
                       'by_epoch=False: 0'):
        hook.before_train_iter(_runner(model), batch_idx=0)


def test_default_arguments_are_the_official_argparse_defaults():
    hook = iBOTTeacherTempHook()
    assert hook.temperatures(0) == (0.04, 0.04)
    assert hook.temperatures(29) == (0.04, 0.07)
    assert hook.temperatures(15)[1] == pytest.approx(0.04 + 0.03 * 15 / 29)


@pytest.mark.parametrize('wrap', [False, True])
def test_before_train_epoch_sets_the_head_of_a_plain_or_wrapped_model(wrap):
    model = _Model()
    # DataParallel is a registered model wrapper and builds on a CPU
    runner = _runner(nn.DataParallel(model) if wrap else model, epoch=12)
    hook = HOOKS.build(dict(type='iBOTTeacherTempHook', teacher_temp=0.07))
    hook.before_train_epoch(runner)
    assert model.head.teacher_temp == pytest.approx(0.04 + 0.03 * 12 / 29)
    assert model.head.teacher_patch_temp == model.head.teacher_temp
    assert isinstance(model.head.teacher_temp, float)


def test_a_resumed_run_gets_the_temperature_of_its_epoch_at_once():
    model = _Model()
    hook = iBOTTeacherTempHook(teacher_temp=0.07)  # never called before
    hook.before_train_epoch(_runner(model, epoch=17))
    assert model.head.teacher_temp == teacher_temp_at(17, 0.04, 0.07, 30)
    hook.before_train_epoch(_runner(model, epoch=45))
    assert model.head.teacher_temp == 0.07


def test_logs_at_the_first_epoch_and_when_the_values_change():
    model = _Model()
    hook = iBOTTeacherTempHook(teacher_temp=0.07, teacher_patch_temp=0.07,
                               warmup_epochs=3)
    messages = []
    for epoch in range(6):
        runner = _runner(model, epoch=epoch)
        hook.before_train_epoch(runner)
        messages.append(runner.logger.messages)
    assert [len(m) for m in messages] == [1, 1, 1, 0, 0, 0]
    assert messages[1][0] == ('iBOTTeacherTempHook: epoch 1: teacher_temp '
                              '0.055, teacher_patch_temp 0.055')


def test_iteration_counts_set_the_values_per_iteration_and_log_briefly():
    model = _Model()
    hook = iBOTTeacherTempHook(teacher_temp=0.07, teacher_patch_temp=0.07,
                               warmup_epochs=11, by_epoch=False)
    messages = []
    for it in range(20):
        runner = _runner(model, epoch=0, it=it)
        hook.before_train_epoch(runner)  # no effect with iteration counts
        hook.before_train_iter(runner, batch_idx=it)
        if it == 5:
            assert model.head.teacher_temp == pytest.approx(0.04 + 0.003 * 5)
        messages += runner.logger.messages
    assert model.head.teacher_temp == 0.07
    assert len(messages) == 2  # the first iteration, the end of warm-up
    assert 'iter 10' in messages[1]


def test_epoch_hook_ignores_iterations():
    model = _Model()
    hook = iBOTTeacherTempHook()
    hook.before_train_iter(_runner(model, it=3), batch_idx=3)
    assert model.head.teacher_temp is None


def test_a_model_without_an_ibot_head_raises_a_clear_error():
    hook = iBOTTeacherTempHook()
    with pytest.raises(AttributeError, match='teacher_patch_temp'):
        hook.before_train_epoch(_runner(nn.Linear(2, 2)))
    model = _Model()
    del model.head.teacher_patch_temp
    with pytest.raises(AttributeError, match='iBOTHead'):
        hook.before_train_epoch(_runner(model))


@pytest.mark.parametrize('kwargs,key', [
    (dict(teacher_temp=0.), 'teacher_temp'),
    (dict(warmup_teacher_temp=-0.04), 'warmup_teacher_temp'),
    (dict(teacher_patch_temp='0.07'), 'teacher_patch_temp'),
    (dict(warmup_epochs=-1), 'warmup_epochs'),
    (dict(warmup_epochs=2.5), 'warmup_epochs'),
])
def test_bad_arguments_raise_a_value_error_naming_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        iBOTTeacherTempHook(**kwargs)
