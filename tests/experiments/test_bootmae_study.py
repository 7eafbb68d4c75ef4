"""The BootMAE study (``mmsbam/experiments/studies/bootmae.py``): its spec,
the configs its options make (the same as the stored runs'), its page
rendered from a tiny fake results set, the re-render from a results file
alone, and the shared token measures on a stub encoder."""
import json
import os.path as osp
import shlex

import pytest
import torch

from mmsbam.experiments import get_study, report
from mmsbam.experiments.runner import pretrain_options
from mmsbam.experiments.schedule import cfg_options_dict, load_cfg
from mmsbam.experiments.studies import bootmae
from mmsbam.experiments.studies._token_features import (page_fmt,
                                                        page_round,
                                                        token_features)
from mmsbam.experiments.study import DISCUSSION_MARKER

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _merged(config, options):
    cfg = load_cfg(osp.join(ROOT, config))
    cfg.merge_from_dict(cfg_options_dict(options))
    return cfg.to_dict()


def _stored(path):
    with open(osp.join(ROOT, path)) as f:
        return json.load(f)['runs']


def test_spec_is_the_stored_run():
    spec = bootmae.build()
    assert get_study('bootmae').build is bootmae.build
    assert [(a.name, a.lr_zero) for a in spec.arms] == [
        ('bootmae', False), ('bootmae-sbam', False), ('bootmae-lr0', True),
        ('bootmae-sbam-lr0', True)]
    assert (spec.seeds, spec.epochs, spec.images) == ((0, 1), 2, 5120)
    assert spec.ratios == (None, )
    assert [c.name for c in spec.cells()][:4] == [
        'bootmae_s0', 'bootmae-sbam_s0', 'bootmae-lr0_s0',
        'bootmae-sbam-lr0_s0']
    assert [e.name for e in spec.evaluators] == [
        'loss_windows', 'token_probe', 'linear_probe']
    assert spec.evaluators[0].after_epoch == 0  # loss_first_t/loss_last_t
    assert spec.evaluators[2].epochs == 2 and spec.evaluators[2].images \
        == 10000
    long = bootmae.build_long()
    assert [a.name for a in long.arms] == ['bootmae', 'bootmae-sbam']
    assert (long.epochs, long.images, long.page) == (4, 12800, '')


@pytest.mark.parametrize('results,build', [
    ('docs/results_bootmae.json', bootmae.build),
    ('docs/results_bootmae_long.json', bootmae.build_long)])
def test_options_make_the_stored_runs_configs(results, build):
    """Every stored run's ``tools/train.py`` options and the harness's
    options of the same cell merge into the same config (the lr-0 arms:
    base LR 0 and the cosine's floor 0; the λf ramp a quarter of the
    run)."""
    spec = build()
    cells = {c.name: c for c in spec.cells()}
    for run in _stored(results):
        cmd = shlex.split(run['command'])
        old = cmd[cmd.index('--cfg-options') + 1:]
        new = pretrain_options(spec, cells[run['cell']])
        assert _merged(run['config'], new) == _merged(run['config'], old)
    cfg = _merged(bootmae.TWIN,
                  pretrain_options(spec, cells['bootmae-sbam_s1']))
    assert cfg['model']['feature_ramp_epochs'] == spec.epochs / 4
    assert cfg['model']['backbone']['type'] == 'SBAMBootMAEViT'


def _fake_runs():
    runs = []
    for seed in (0, 1):
        for i, arm in enumerate(('bootmae', 'bootmae-sbam')):
            runs.append(dict(cell=f'{arm}_s{seed}', arm=arm, seed=seed,
                             ratio=None, epochs=2, images=512,
                             knn_cls=60.0 + seed + i, knn_avg=50.0 + 2 * seed,
                             linear=40.125 + seed, loss_first=5.0,
                             loss_last=2.0 - i))
    runs.append(dict(cell='bootmae-lr0_s0', arm='bootmae-lr0', seed=0,
                     ratio=None, epochs=2, images=512, loss_first=6.5,
                     loss_last=6.555))
    return runs


def test_render_tables_from_a_fake_results_set(tmp_path):
    spec = bootmae.build(notes=dict(long=dict(
        results=str(tmp_path / 'none.json'))))
    baselines = dict(initial_weights={'0': dict(knn_cls=63.04,
                                                knn_avg=62.46),
                                      'seconds': 1.0})
    text, data = bootmae.render(spec, _fake_runs(), baselines)
    assert '| `bootmae` | 60.50 ± 0.50 | 51.00 ± 1.00 | 40.63 ± 0.50 | ' \
        '5.00 → 2.00 |' in text  # 40.625 rounded half up
    assert '| `bootmae-sbam` | 61.50 ± 0.50 |' in text
    assert 'k-NN class 60.00 / 61.00, mean 50.00 / 52.00' in text
    assert 'class token 63.04 %, mean patch token 62.46 %' in text
    assert '(seed 0): 6.50 → 6.56' in text
    assert 'longer run' not in text  # no long results file
    assert text.rstrip().endswith(DISCUSSION_MARKER)
    assert data['summary']['knn_cls']['table']['bootmae']['config'][
        'mean'] == 60.5


def test_report_rerenders_from_the_results_file_alone(tmp_path):
    """No cell in the work dir: the page is rendered from the stored runs
    and baselines, the discussion kept, the results file not shrunk."""
    results, page = tmp_path / 'r.json', tmp_path / 'p.md'
    results.write_text(json.dumps(dict(spec='bootmae', runs=_fake_runs(),
                                       baselines={})))
    page.write_text(f'old tables\n\n{DISCUSSION_MARKER}\n\nhand-written\n')
    spec = bootmae.build(work_dir=str(tmp_path / 'empty'),
                         results=str(results), page=str(page),
                         notes=dict(long={}))
    report(get_study('bootmae'), spec)
    text = page.read_text()
    assert 'old tables' not in text and '| `bootmae` | 60.50' in text
    assert text.count(DISCUSSION_MARKER) == 1
    assert text.rstrip().endswith('hand-written')
    assert len(json.loads(results.read_text())['runs']) == 5


def test_page_rounding_keeps_the_stored_figures():
    """The pages were rounded from three decimals, half up."""
    assert page_round(70.71499824523926) == '70.72'
    assert page_round(58.524999022483826) == '58.53'
    assert page_round(1.30869913101196, 3) == '1.309'
    assert page_fmt(dict(mean=1.0, spread=0.0, n=1)) == '1.00'
    assert page_fmt(None) == '–'


def test_token_features_are_class_and_mean_patch_tokens():
    class Backbone(torch.nn.Module):
        def forward(self, x, mask=None):
            assert mask is None
            return (x.flatten(1)[:, None, :4] * torch.arange(1., 4.)[
                None, :, None], )

    class Model(torch.nn.Module):
        backbone = Backbone()

        @staticmethod
        def data_preprocessor(data, training):
            assert not training
            return data

    from mmpretrain.structures import DataSample
    x = torch.randn(2, 1, 2, 2)
    samples = [DataSample().set_gt_label(i) for i in (3, 7)]
    out = token_features(Model(), [dict(inputs=x, data_samples=samples)])
    flat = x.flatten(1)
    assert torch.allclose(out['cls'][0], flat)  # unnormalised
    assert torch.allclose(out['avg'][0], 2.5 * flat)
    assert out['cls'][1].tolist() == [3, 7]


def test_probe_of_the_initial_weights_on_a_few_images(fashion_mnist):
    """The token probe end to end on the tiny BootMAE encoder (64 images
    of each split, initial weights): both k-NN scores and the probe, the
    same under the same seed."""
    from dataclasses import replace
    probe = replace(bootmae.PROBE, train_images=64, linear_epochs=2)
    cfg = probe.eval_cfg(bootmae.PLAIN)
    assert cfg.train_dataloader.dataset.indices == 64
    first = probe.measure(bootmae.PLAIN, None, seed=0)
    assert set(first) == {'knn_cls', 'knn_avg', 'linear'}
    assert all(0 <= v <= 100 for v in first.values())
    assert probe.measure(bootmae.PLAIN, None, seed=0) == first
