"""Two training processes on the CPU (gloo, loopback) through
``tools/dist_train.sh``: different masks per rank, the global batch, rank
0's checkpoint, and an exact resume across 2 processes.

Every run records each rank's masks and losses with
``tests/dist_probe.py``'s hook (``custom_imports`` + ``PYTHONPATH``). 32
images, 16 per process and step, 2 processes: 1 iteration per epoch.
"""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from dist_probe import PRETRAIN, probe, probe_config, probes, train

pytestmark = pytest.mark.slow

IMAGES, BATCH, WORLD = 32, 16, 2


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory):
    """2 epochs with 2 processes and RandomStateHook; ``(config, work_dir,
    output)``."""
    tmp = tmp_path_factory.mktemp('two_processes')
    config = probe_config(tmp)
    proc = train(config, tmp / 'run', 'train_cfg.max_epochs=2', nproc=WORLD,
                 port=29541)
    return config, tmp / 'run', proc.stdout


def test_runs_distributed_with_gloo(two_processes):
    out = two_processes[2]
    assert 'Distributed training: True' in out
    assert "'backend': 'gloo'" in out or '"backend": "gloo"' in out or \
        "backend='gloo'" in out, out[-3000:]


def test_ranks_draw_different_masks(two_processes):
    """``diff_rank_seed=True``: each rank seeds with seed + rank.

    The masks would differ anyway (each rank masks other images); the
    seeds recorded by the ranks are what shows the streams differ (with
    ``diff_rank_seed=False`` both record seed 0 and equal states).
    """
    work_dir = two_processes[1]
    iterations = math.ceil(IMAGES / (BATCH * WORLD)) * 2
    assert probes(work_dir) == [(r, i) for r in range(WORLD)
                                for i in range(1, iterations + 1)]
    for i in range(1, iterations + 1):
        records = [probe(work_dir, i, r) for r in range(WORLD)]
        assert [r['torch_seed'] for r in records] == [0, 1]  # seed 0 + rank
        assert not torch.equal(records[0]['mask'], records[1]['mask'])


def test_global_batch_is_per_process_batch_times_world_size(two_processes):
    work_dir = two_processes[1]
    per_epoch = math.ceil(IMAGES / (BATCH * WORLD))
    assert per_epoch == 1
    for i in (1, 2):  # one iteration per epoch, 2 epochs
        records = [probe(work_dir, i, r) for r in range(WORLD)]
        assert [r['world_size'] for r in records] == [WORLD] * WORLD
        assert [r['batch_size'] for r in records] == [BATCH] * WORLD
        assert [r['mask'].shape[0] for r in records] == [BATCH] * WORLD
        # the ranks split the epoch: disjoint halves of the 32 images
        seen = [idx for r in records for idx in r['sample_idx']]
        assert sorted(seen) == list(range(IMAGES))
        assert records[0]['epoch'] == i - 1
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), map_location='cpu')
    assert ckpt['meta']['iter'] == 2 * per_epoch


def test_rank0_checkpoint_is_complete(two_processes):
    """Rank 0's checkpoint has exactly a 1-process model's keys (no
    ``module.`` prefix), loads with torch.load, and holds both ranks'
    random states."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(PRETRAIN)
    expected = MODELS.build(cfg.model).state_dict()
    ckpt = torch.load(osp.join(two_processes[1], 'epoch_1.pth'),
                      map_location='cpu')
    state = ckpt['state_dict']
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert state[key].shape == value.shape, key
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(ckpt)
    entry = ckpt['random_state']
    assert entry['world_size'] == WORLD and len(entry['states']) == WORLD
    # the ranks' generators really are different streams
    assert not torch.equal(entry['states'][0]['torch'],
                           entry['states'][1]['torch'])


def test_resume_two_processes_is_bit_exact(two_processes, tmp_path):
    """Resumed after epoch 1 with 2 processes: each rank's epoch-2 mask and
    loss, and the final weights, equal the uninterrupted run's bit for bit
    (gloo's all-reduce of 2 ranks is order-independent on the CPU)."""
    config, full, _ = two_processes
    out = train(config, tmp_path, 'train_cfg.max_epochs=2', nproc=WORLD,
                port=29542, resume=str(full / 'epoch_1.pth')).stdout
    assert 'RandomStateHook: restored the random states of rank 0 of 2' in out
    assert probes(tmp_path) == [(0, 2), (1, 2)]
    for rank in range(WORLD):
        a, b = probe(full, 2, rank), probe(tmp_path, 2, rank)
        assert a['sample_idx'] == b['sample_idx']
        assert torch.equal(a['mask'], b['mask']), rank
        assert torch.equal(a['loss'], b['loss']), rank
    sa = torch.load(f'{full}/epoch_2.pth', map_location='cpu')['state_dict']
    sb = torch.load(f'{tmp_path}/epoch_2.pth',
                    map_location='cpu')['state_dict']
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_resume_with_other_world_size_warns_and_trains(two_processes,
                                                       tmp_path):
    """A 2-process checkpoint resumed by 1 process: the random states are
    not restored (documented), with a warning; training completes."""
    config, full, _ = two_processes
    out = train(config, tmp_path, 'train_cfg.max_epochs=2',
                resume=str(full / 'epoch_1.pth')).stdout
    assert 'holds the random states of 2 process(es), this run has 1' in out
    assert 'RandomStateHook: restored' not in out
    assert osp.isfile(osp.join(tmp_path, 'epoch_2.pth'))
