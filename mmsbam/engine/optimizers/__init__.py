"""Optimizer wrappers, one per ``<name>_optim_wrapper.py``."""
from .ibot_optim_wrapper import (AmpiBOTOptimWrapper, iBOTGradientMixin,
                                 iBOTOptimWrapper)

__all__ = ['iBOTOptimWrapper', 'AmpiBOTOptimWrapper', 'iBOTGradientMixin']
