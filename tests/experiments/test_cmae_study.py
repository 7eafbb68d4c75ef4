"""The CMAE study (``mmsbam/experiments/studies/cmae.py``): its spec, the
configs its options make (the same as the stored runs'), the evaluation
config of its token measures, the initial-weights baseline's checkpoint
and its page rendered from a tiny fake results set."""
import json
import os.path as osp
import shlex

from mmsbam.experiments import get_study
from mmsbam.experiments.runner import pretrain_options
from mmsbam.experiments.schedule import cfg_options_dict, load_cfg
from mmsbam.experiments.studies import cmae
from mmsbam.experiments.study import DISCUSSION_MARKER

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _merged(config, options):
    cfg = load_cfg(osp.join(ROOT, config))
    cfg.merge_from_dict(cfg_options_dict(options))
    return cfg.to_dict()


def test_spec_is_the_stored_run():
    spec = cmae.build()
    assert get_study('cmae').build is cmae.build
    assert [(a.name, a.lr_zero) for a in spec.arms] == [
        ('cmae', False), ('cmae-sbam', False), ('cmae-lr0', True),
        ('cmae-sbam-lr0', True)]
    assert (spec.seeds, spec.epochs, spec.images) == ((0, 1), 2, 7680)
    assert 'cmae-lr0_s0' in [c.name for c in spec.cells()]
    windows, probe = spec.evaluators
    assert windows.terms == ('loss_rc', 'loss_ct')
    assert probe.keys == (('avg', 'knn'), ('cls', 'knn_cls'))
    assert (probe.linear_epochs, probe.linear_feature) == (10, 'cls')
    assert spec.baselines[0].from_lr_zero


def test_options_make_the_stored_runs_configs():
    """Every stored run's ``tools/train.py`` options and the harness's
    options of the same cell merge into the same config (the cosine cut
    to the run: end = epochs, T_max = epochs - 1; lr 0 for controls)."""
    spec = cmae.build()
    cells = {c.name: c for c in spec.cells()}
    with open(osp.join(ROOT, 'docs/results_cmae.json')) as f:
        runs = json.load(f)['runs']
    assert {r['cell'] for r in runs} == {'cmae_s0', 'cmae-sbam_s0',
                                         'cmae-lr0_s0', 'cmae-sbam-lr0_s0',
                                         'cmae_s1', 'cmae-sbam_s1'}
    for run in runs:
        cmd = shlex.split(run['command'])
        old = cmd[cmd.index('--cfg-options') + 1:]
        new = pretrain_options(spec, cells[run['cell']])
        assert _merged(run['config'], new) == _merged(run['config'], old)
    cfg = _merged(cmae.PLAIN, pretrain_options(spec, cells['cmae-lr0_s0']))
    assert cfg['optim_wrapper']['optimizer']['lr'] == 0.0
    assert cfg['param_scheduler'][1]['T_max'] == 1


def test_probe_embeds_both_splits_at_32_px():
    cfg = cmae.PROBE.eval_cfg(cmae.PLAIN)
    test = cfg.test_dataloader.dataset
    assert (test.type, test.split, test.test_mode) == ('FashionMNIST',
                                                       'test', True)
    assert test.pipeline[0] == dict(type='Resize', scale=32,
                                    interpolation='bicubic')
    assert 'indices' not in cfg.train_dataloader.dataset  # all 60,000


def test_initial_weights_come_from_the_lr0_control(tmp_path):
    spec = cmae.build(work_dir=str(tmp_path))
    base = spec.baselines[0]
    assert base.checkpoint(spec, 0) is None  # no control run: in process
    ckpt = tmp_path / 'cmae-lr0_s0' / 'pretrain' / 'epoch_2.pth'
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b'')
    assert base.checkpoint(spec, 0) == str(ckpt)


def test_render_tables_from_a_fake_results_set():
    runs = [dict(cell=f'{arm}_s{s}', arm=arm, seed=s, ratio=None, epochs=2,
                 images=7680, knn=70.0 + s, knn_cls=71.0, linear=75.0 + s,
                 loss_first=1.5, loss_last=1.3, loss_rc_last=0.7,
                 loss_ct_last=0.5)
            for s in (0, 1) for arm in ('cmae', 'cmae-sbam')]
    runs.append(dict(cell='cmae-lr0_s0', arm='cmae-lr0', seed=0, ratio=None,
                     epochs=2, images=7680, loss_first=2.2, loss_last=2.2,
                     loss_rc_last=1.2, loss_ct_last=1.0))
    baselines = dict(initial_weights={'0': dict(
        knn=69.32, knn_cls=69.27, linear=74.18, weights='x/epoch_2.pth')})
    text, data = cmae.render(cmae.build(), runs, baselines)
    assert ('| CMAE | 70.50 ± 0.50 | 71.00 ± 0.00 | 75.50 ± 0.50 | '
            's0 70.00 / 71.00 / 75.00; s1 71.00 / 71.00 / 76.00 |') in text
    assert '**69.32 %**' in text and 'learning-rate-0 control run' in text
    # losses: seed 0 only (the seed with a control); no control for SBAM
    assert '| CMAE | 1.300 | 2.200 | 0.700 | 1.200 | 0.500 | 1.000 |' in text
    assert '| CMAE + SBAM | 1.300 | – | 0.700 | – | 0.500 | – |' in text
    assert '(60 iterations;' in text
    assert text.rstrip().endswith(DISCUSSION_MARKER)
    assert data['summary']['knn']['table']['cmae']['config']['n'] == 2
