"""Fitting a config's LR schedule to another number of epochs, and
``--cfg-options``-style overrides as dicts."""
import argparse
from typing import Any, List, Optional, Sequence

__all__ = ['cfg_options_dict', 'load_cfg', 'schedule_options']


def cfg_options_dict(options: Sequence[str] = ()) -> Optional[dict]:
    """``--cfg-options``-style ``KEY=VALUE`` strings as a dict (values
    parsed as MMEngine's ``DictAction`` does); None without any."""
    from mmengine.config import DictAction
    if not options:
        return None
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    return parser.parse_args(['--o', *options]).o


def load_cfg(path: str, options: Sequence[str] = ()) -> Any:
    """A config with ``--cfg-options``-style ``KEY=VALUE`` strings merged."""
    from ..analysis.models import load_config
    return load_config(path, cfg_options_dict(options))


def _squeeze(x: float, epochs: int, old: float, warm_end: float) -> float:
    """Map epoch ``x`` of an ``old``-epoch schedule onto ``epochs``: the
    warm-up into the first half, the rest into the second."""
    half = epochs / 2
    if warm_end <= 0:
        return x * epochs / old
    if x <= warm_end:
        return x * half / warm_end
    return half + (x - warm_end) * half / (old - warm_end)


def schedule_options(cfg: Any, epochs: int) -> List[str]:
    """``--cfg-options`` that fit the config's LR schedule to ``epochs``.

    Schedulers ending at the config's ``max_epochs`` (the main decay) are
    stretched or cut to end at ``epochs`` (``T_max = end - begin``); the
    warm-up is kept. When ``epochs`` does not exceed the warm-up, the
    warm-up is squeezed into the first half of ``epochs`` and the rest into
    the second (fractional epochs are fine with ``convert_to_iter_based``).
    """
    old = cfg.train_cfg.get('max_epochs')
    opts = [f'train_cfg.max_epochs={epochs}']
    if 'val_interval' in cfg.train_cfg:
        opts.append(f'train_cfg.val_interval={epochs}')
    scheds = cfg.get('param_scheduler') or []
    if isinstance(scheds, dict):
        scheds = [scheds]
    if not old or not scheds:
        return opts
    warm_end = max([s.get('end', old) for s in scheds
                    if s.get('end', old) < old] or [0])
    for i, s in enumerate(scheds):
        if not s.get('by_epoch', True):
            continue
        begin, end = s.get('begin', 0), s.get('end', old)
        if epochs > warm_end:
            if end >= old:
                opts.append(f'param_scheduler.{i}.end={epochs}')
                if 'T_max' in s:
                    opts.append(f'param_scheduler.{i}.T_max={epochs - begin}')
        else:
            b = _squeeze(begin, epochs, old, warm_end)
            e = _squeeze(end, epochs, old, warm_end)
            opts += [f'param_scheduler.{i}.begin={b:g}',
                     f'param_scheduler.{i}.end={e:g}']
            if 'T_max' in s:
                opts.append(f'param_scheduler.{i}.T_max={e - b:g}')
    return opts
