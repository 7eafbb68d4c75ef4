"""``mmsbam.engine.launch.close_process_group``: no gloo thread outlives it.

gloo's threads still running at interpreter exit made 2-process CPU runs
abort now and then after training (``terminate called without an active
exception``). Each case runs in a fresh interpreter (a 1-process gloo group
in the test process would leak into other tests) and lists the process's
native threads by name from ``/proc``.
"""
import os.path as osp
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(not osp.isdir('/proc/self/task'),
                                reason='thread names are read from /proc')

SCRIPT = '''
import gc, os, sys
import torch, torch.distributed as dist
from torch import nn
from mmsbam.engine.launch import close_process_group

def gloo_threads():
    names = []
    for task in os.listdir('/proc/self/task'):
        with open(f'/proc/self/task/{task}/comm') as f:
            names.append(f.read().strip())
    return sorted(n for n in names if 'gloo' in n)

def train():
    """What a finished Runner leaves: a DDP model (its reducer holds the
    process group) in a reference cycle."""
    dist.init_process_group('gloo', init_method=f'file://{sys.argv[2]}',
                            rank=0, world_size=1)
    model = nn.parallel.DistributedDataParallel(nn.Linear(4, 4))
    model(torch.randn(2, 4)).sum().backward()
    runner = dict(model=model)
    runner['self'] = runner

train()
print('during', gloo_threads())
if sys.argv[1] == 'close_process_group':
    close_process_group()
else:  # what mmsbam did before: barrier + destroy only
    dist.barrier()
    dist.destroy_process_group()
print('after', gloo_threads(), dist.is_initialized())
'''


def _threads(tmp_path, how):
    proc = subprocess.run(
        [sys.executable, '-c', SCRIPT, how, str(tmp_path / 'store')],
        cwd=ROOT, text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(' ', 1) for line in proc.stdout.splitlines())
    return lines['during'], lines['after']


def test_close_process_group_joins_gloo_threads(tmp_path):
    during, after = _threads(tmp_path, 'close_process_group')
    assert 'pt_gloo_runloop' in during  # the threads exist to begin with
    assert after == '[] False'


def test_destroy_alone_leaves_gloo_threads_running(tmp_path):
    """Why :func:`close_process_group` collects: ``destroy_process_group``
    alone leaves the group alive while a cycle holds the model."""
    _, after = _threads(tmp_path, 'destroy')
    assert 'pt_gloo_runloop' in after
