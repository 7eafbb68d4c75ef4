"""Hooks, one per ``<name>_hook.py``."""
from .ibot_teacher_temp_hook import iBOTTeacherTempHook
from .non_finite_loss_hook import NonFiniteLossHook
from .random_state_hook import (RandomStateHook, get_random_state,
                                set_random_state)
from .sbam_hook import SBAMHook

__all__ = [
    'SBAMHook', 'RandomStateHook', 'NonFiniteLossHook', 'iBOTTeacherTempHook',
    'get_random_state', 'set_random_state'
]
