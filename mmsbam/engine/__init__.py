"""What MMEngine's Runner uses from mmsbam: hooks, optimizer wrappers, the
preflight checks and the launch helpers of ``tools/train.py`` /
``tools/test.py``."""
from .hooks import (NonFiniteLossHook, RandomStateHook, SBAMHook,
                    iBOTTeacherTempHook)
from .optimizers import AmpiBOTOptimWrapper, iBOTOptimWrapper

__all__ = [
    'SBAMHook', 'RandomStateHook', 'NonFiniteLossHook', 'iBOTTeacherTempHook',
    'iBOTOptimWrapper', 'AmpiBOTOptimWrapper'
]
