"""The masking-ratio sweep study (``mmsbam/experiments/studies/
ratio_sweep.py``): its spec and the configs its options make, the linear
probe, which cells get a convergence curve, the page rendered
from hand-made results, re-rendering from a stored results file without
losing cells, the tool's dry run, and one tiny cell end to end."""
import json
import os.path as osp
import shlex
from dataclasses import replace

import pytest

from mmsbam.experiments import get_study, report, run_experiment
from mmsbam.experiments.evaluators import LinearProbeRun
from mmsbam.experiments.runner import pretrain_options
from mmsbam.experiments.schedule import cfg_options_dict, load_cfg
from mmsbam.experiments.spec import cell_name
from mmsbam.experiments.studies import ratio_sweep
from mmsbam.experiments.study import DISCUSSION_MARKER

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_spec_is_the_stored_sweep():
    spec = ratio_sweep.build()
    assert [a.name for a in spec.arms] == ['mae', 'sbm', 'sbam']
    assert spec.ratios == (0.45, 0.6, 0.75, 0.9) and spec.seeds == (0, 1)
    assert spec.epochs == 3 and spec.images == 0
    assert len(spec.cells()) == 24
    assert [e.name for e in spec.evaluators] == ['knn', 'linear_probe']
    assert [b.name for b in spec.baselines] == ['initial_weights']
    knn = spec.evaluators[0]
    assert (knn.frozen.k, knn.frozen.temperature, knn.frozen.feature) == (
        20, 0.07, 'avg')
    assert (knn.frozen.train_images, knn.frozen.test_images) == (0, 0)
    assert spec.evaluators[1].epochs == 2
    assert get_study('ratio_sweep').build is ratio_sweep.build


@pytest.mark.parametrize('arm,ratio,backbone,amr', [
    ('mae', 0.75, 'MAEViT', None),
    ('sbm', 0.45, 'SBAMViT', None),
    ('sbam', 0.75, 'SBAMViT', 0.1),
    ('sbam', 0.9, 'SBAMViT', 0.05),  # ratio_var keeps 0.9 + rv < 1
])
def test_arm_options_make_the_sweeps_config(arm, ratio, backbone, amr):
    spec = ratio_sweep.build()
    cell = [c for c in spec.cells()
            if c.arm.name == arm and c.ratio == ratio][0]
    cfg = load_cfg(cell.arm.config)
    cfg.merge_from_dict(cfg_options_dict(pretrain_options(spec, cell)))
    assert cfg.model.backbone.type == backbone
    assert cfg.model.backbone.mask_ratio == ratio
    assert cfg.randomness.seed == cell.seed
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.param_scheduler[1].end == 3
    assert cfg.param_scheduler[1].T_max == 2
    if amr is None:
        assert 'amr' not in cfg.model.backbone
    else:
        assert cfg.model.backbone.amr.mode == 'sample'
        assert cfg.model.backbone.amr.ratio_var == amr
        assert cfg.model.backbone.amr.delta == ratio_sweep.DELTA
    assert ratio_sweep.backbone_type(cell.arm) == backbone


def test_convergence_only_for_mae_and_sbam_at_075():
    knn = ratio_sweep.SweepKNN()
    spec = ratio_sweep.build()
    curves = {c.name for c in spec.cells()
              if knn.wants_curve(c.arm.name, c.ratio)}
    assert curves == {'mae_r0.75_s0', 'mae_r0.75_s1', 'sbam_r0.75_s0',
                      'sbam_r0.75_s1'}


def test_linear_probe_is_the_sweeps():
    """2 epochs of the Fashion-MNIST linear config from the cell's last
    checkpoint, on every training image, scored as ``linear_top1``."""
    lin = ratio_sweep.build().evaluators[1]
    assert isinstance(lin, LinearProbeRun)
    assert (lin.config, lin.epochs, lin.images, lin.key) == (
        ratio_sweep.LINEAR_CONFIG, 2, 0, 'linear_top1')
    assert osp.isfile(osp.join(ROOT, lin.config))


def _run(arm, ratio, seed, knn, linear, curve=None):
    out = dict(cell=cell_name(arm, ratio, seed), arm=arm, ratio=ratio,
               seed=seed, epochs=2, images=0, config='c.py',
               ratio_var=0.1 if arm == 'sbam' else None, knn_top1=knn,
               linear_top1=linear, linear_epochs=2)
    if curve:
        out['convergence'] = [dict(epoch=e + 1, knn_top1=v)
                              for e, v in enumerate(curve)]
    return out


RUNS = [
    _run('mae', 0.6, 0, 80.0, 70.0, [50.0, 80.0]),
    _run('mae', 0.6, 1, 82.0, 72.0, [54.0, 82.0]),
    _run('mae', 0.9, 0, 70.0, 60.0), _run('mae', 0.9, 1, 74.0, 62.0),
    _run('sbam', 0.6, 0, 83.0, 71.0), _run('sbam', 0.6, 1, 83.0, 75.0),
    _run('sbam', 0.9, 0, 79.0, 70.0), _run('sbam', 0.9, 1, 81.0, 70.0),
]
BASELINES = {'initial_weights': {'0': {'knn_top1': 30.0},
                                 '1': {'knn_top1': 34.0}}}


def test_render_tables_from_hand_made_numbers(tmp_path):
    spec = ratio_sweep.build(ratios=(0.6, 0.9), epochs=2,
                             results=str(tmp_path / 'r.json'),
                             page=str(tmp_path / 'page.md'))
    text, data = ratio_sweep.render(spec, RUNS, BASELINES)
    # mean ± half-range; across = max - min of the means; gain: mean over
    # ratios of (83 - 81, 80 - 72) = 5
    assert ('| MAE (random) | 81.00 ± 1.00 | 72.00 ± 2.00 | 9.00 | – |'
            in text)
    assert ('| SBAM (SBM + AMR per image) | 83.00 ± 0.00 | 80.00 ± 1.00 '
            '| 3.00 | +5.00 |') in text
    # linear: (73 - 71) and (70 - 61) -> +5.50
    assert ('| SBAM (SBM + AMR per image) | 73.00 ± 2.00 | 70.00 ± 0.00 '
            '| 3.00 | +5.50 |') in text
    assert 'SBM (salience' not in text  # no runs, no row
    # epoch 0 of the curve: the initial weights of its seeds
    assert '| run | epoch 0 | epoch 1 | epoch 2 |' in text
    assert ('| MAE (random) at 0.60 | 32.00 ± 2.00 | 52.00 ± 2.00 | '
            '81.00 ± 1.00 |') in text
    assert 'seeds [0, 1]): 32.00 ± 2.00 %' in text
    assert data['summary']['knn_top1']['mean_gain_over_mae'] == {
        'sbam': pytest.approx(5.0)}
    for png in data['plots'].values():
        assert osp.isfile(png) and f'({osp.basename(png)})' in text


def test_report_rerenders_stored_results_without_losing_cells(tmp_path):
    """An empty work dir re-renders the stored results (keeping the
    discussion and every cell); a partial run merges by cell name; a run
    of another length is refused."""
    study = get_study('ratio_sweep')
    results, page = tmp_path / 'r.json', tmp_path / 'page.md'
    results.write_text(json.dumps(dict(
        spec='ratio_sweep', runs=RUNS, baselines=BASELINES,
        meta=dict(command='python old_tool.py', wall_s=61.0))))
    page.write_text('old table\n' + DISCUSSION_MARKER + '\nby hand\n')
    spec = ratio_sweep.build(ratios=(0.6, 0.9), epochs=2, seeds=(0, ),
                             work_dir=str(tmp_path / 'empty'),
                             results=str(results), page=str(page))
    report(study, spec)  # no cell in the work dir, no baseline computed
    text = page.read_text()
    assert 'old table' not in text and '81.00 ± 1.00' in text
    assert 'python old_tool.py' in text and '0h01m01s' in text
    assert text.endswith(DISCUSSION_MARKER + '\nby hand\n')
    assert text.count(DISCUSSION_MARKER) == 1
    stored = json.loads(results.read_text())
    assert len(stored['runs']) == len(RUNS)
    assert stored['meta']['wall_s'] == 61.0
    assert stored['baselines'] == BASELINES
    # one cell rerun: it replaces its stored result, the others stay
    rerun = dict(RUNS[0], knn_top1=90.0)
    cell = tmp_path / 'runs' / rerun['cell']
    cell.mkdir(parents=True)
    (cell / 'result.json').write_text(json.dumps(rerun))
    report(study, spec.with_(work_dir=str(tmp_path / 'runs')), False)
    stored = json.loads(results.read_text())
    assert len(stored['runs']) == len(RUNS)
    assert [r['knn_top1'] for r in stored['runs']
            if r['cell'] == rerun['cell']] == [90.0]
    assert stored['baselines'] == BASELINES
    (cell / 'result.json').write_text(json.dumps(dict(rerun, epochs=5)))
    with pytest.raises(ValueError, match='another results file'):
        report(study, spec.with_(work_dir=str(tmp_path / 'runs')), False)
    assert len(json.loads(results.read_text())['runs']) == len(RUNS)


def test_dry_run_prints_the_pretraining_commands(tmp_path, run_tool):
    proc = run_tool('tools/benchmarks/experiment.py', 'ratio_sweep',
                    '--dry-run', '--ratios', '0.9', '--seeds', '0',
                    '--work-dir', tmp_path, check=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[-1] == '# 3 cells'
    cmds = [shlex.split(line) for line in lines if ' tools/' in line]
    assert len(cmds) == 3 and {c[1] for c in cmds} == {'tools/train.py'}
    assert [c[c.index('--work-dir') + 1] for c in cmds] == [
        osp.join(str(tmp_path), f'{a}_r0.90_s0', 'pretrain')
        for a in ('mae', 'sbm', 'sbam')]
    sbam = next(line for line in lines if 'amr.mode=sample' in line)
    assert 'model.backbone.amr.ratio_var=0.05' in sbam


def test_cfg_options_reach_every_pretraining_command(tmp_path, run_tool):
    proc = run_tool('tools/benchmarks/experiment.py', 'ratio_sweep',
                    '--dry-run', '--arms', 'sbm', '--ratios', '0.75',
                    '--seeds', '0', '1', '--cfg-options',
                    'model.backbone.temperature=64', '--work-dir', tmp_path,
                    '--results', tmp_path / 'r.json', '--page', '',
                    check=True, timeout=120)
    cmds = [shlex.split(line) for line in proc.stdout.splitlines()
            if ' tools/' in line]
    assert len(cmds) == 2
    assert all(c[-1] == 'model.backbone.temperature=64' for c in cmds)


def test_cfg_options_refused_into_the_stock_results(tmp_path, run_tool):
    """Options change what a cell trains, not its name: without its own
    work dir, results and page the stored cells would be mixed in."""
    proc = run_tool('tools/benchmarks/experiment.py', 'ratio_sweep',
                    '--dry-run', '--cfg-options',
                    'model.backbone.temperature=64', '--work-dir', tmp_path,
                    check=False, timeout=120)
    assert proc.returncode != 0
    assert '--results' in proc.stdout and '--page' in proc.stdout


@pytest.mark.slow
def test_tiny_cell_end_to_end(tmp_path, monkeypatch, fashion_mnist):
    """MAE at 0.75 (a convergence cell), 2 epochs on 32 images, k-NN on
    a few hundred images, the linear probe by tools/train.py (256
    images, one batch) and tools/test.py, then read back."""
    monkeypatch.chdir(ROOT)
    frozen = replace(ratio_sweep.FROZEN, train_images=200, test_images=100)
    spec = ratio_sweep.build(
        seeds=(0, ), ratios=(0.75, ), epochs=2,
        arms=(ratio_sweep.ARMS[0], ),
        evaluators=(ratio_sweep.SweepKNN(frozen),
                    replace(ratio_sweep.LINEAR, images=256)),
        baselines=(), extra_options=('train_dataloader.dataset.indices=32',
                                     'train_dataloader.batch_size=16'),
        work_dir=str(tmp_path / 'runs'), results=str(tmp_path / 'r.json'),
        page='')
    [res] = run_experiment(spec)
    assert res['cell'] == 'mae_r0.75_s0'
    assert 0 <= res['knn_top1'] <= 100 and 0 <= res['linear_top1'] <= 100
    assert [c['epoch'] for c in res['convergence']] == [1, 2]
    assert res['convergence'][-1]['knn_top1'] == res['knn_top1']
    assert run_experiment(spec) == [res]  # read back
