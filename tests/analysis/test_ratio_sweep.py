"""mmsbam.analysis.ratio_sweep and tools/benchmarks/ratio_sweep.py:
aggregation on hand-made numbers, the schedule and AMR rules, the commands
of a dry run, the report, and a smoke run through the real tools on a
32-image slice of Fashion-MNIST (4 tiny pre-trainings, k-NN only)."""
import json
import os.path as osp
import shlex

import pytest
from conftest import ROOT

from mmsbam.analysis import ratio_sweep as sweep

TOOL = 'tools/benchmarks/ratio_sweep.py'


def _run(method, ratio, seed, knn, linear=None, curve=None):
    return dict(method=method, ratio=ratio, seed=seed, knn_top1=knn,
                linear_top1=linear, convergence=curve)


def test_aggregate_hand_made_numbers():
    runs = [
        _run('mae', 0.6, 0, 80.0, 70.0), _run('mae', 0.6, 1, 82.0, 72.0),
        _run('mae', 0.9, 0, 70.0, 60.0), _run('mae', 0.9, 1, 74.0, 62.0),
        _run('sbam', 0.6, 0, 83.0, 71.0), _run('sbam', 0.6, 1, 83.0, 75.0),
        _run('sbam', 0.9, 0, 79.0, 70.0), _run('sbam', 0.9, 1, 81.0, 70.0),
    ]
    s = sweep.aggregate(runs)
    knn = s['knn_top1']
    assert knn['table']['mae']['0.60']['mean'] == pytest.approx(81.0)
    assert knn['table']['mae']['0.60']['spread'] == pytest.approx(1.0)
    assert knn['table']['mae']['0.90']['mean'] == pytest.approx(72.0)
    assert knn['table']['mae']['0.90']['spread'] == pytest.approx(2.0)
    assert knn['table']['sbam']['0.60']['spread'] == pytest.approx(0.0)
    assert knn['table']['sbam']['0.90']['n'] == 2
    # spread across ratios: max - min of the seed means
    assert knn['spread_across_ratios']['mae'] == pytest.approx(9.0)
    assert knn['spread_across_ratios']['sbam'] == pytest.approx(3.0)
    # mean gain over MAE: mean over ratios of (83 - 81, 80 - 72) = 5
    assert knn['mean_gain_over_mae'] == {'sbam': pytest.approx(5.0)}
    lin = s['linear_top1']
    assert lin['table']['sbam']['0.60']['mean'] == pytest.approx(73.0)
    assert lin['table']['sbam']['0.60']['spread'] == pytest.approx(2.0)
    # (73 - 71) and (70 - 61) -> 5.5
    assert lin['mean_gain_over_mae']['sbam'] == pytest.approx(5.5)
    assert lin['spread_across_ratios']['mae'] == pytest.approx(10.0)
    md = sweep.render_markdown(dict(runs=[], summary=s))
    assert '| SBAM (SBM + AMR per image) | 83.00 ± 0.00 | 80.00 ± 1.00 ' \
        '| 3.00 | +5.00 |' in md
    assert ('| MAE (random) | 81.00 ± 1.00 | 72.00 ± 2.00 | 9.00 | – |'
            in md)


def test_aggregate_k_nn_only_and_convergence():
    curve0 = [dict(epoch=1, knn_top1=50.0), dict(epoch=2, knn_top1=60.0)]
    curve1 = [dict(epoch=1, knn_top1=54.0), dict(epoch=2, knn_top1=60.0)]
    s = sweep.aggregate([_run('sbm', 0.75, 0, 60.0, curve=curve0),
                         _run('sbm', 0.75, 1, 60.0, curve=curve1)])
    assert 'linear_top1' not in s
    assert s['knn_top1']['mean_gain_over_mae'] == {}  # no MAE to compare
    assert s['convergence']['sbm@0.75']['1']['mean'] == pytest.approx(52.0)
    assert s['convergence']['sbm@0.75']['1']['spread'] == pytest.approx(2.0)
    assert '0' not in s['convergence']['sbm@0.75']  # no init reference
    # the initial weights' k-NN is epoch 0 of the curve, per seed
    s = sweep.aggregate([_run('sbm', 0.75, 0, 60.0, curve=curve0),
                         _run('sbm', 0.75, 1, 60.0, curve=curve1)],
                        init_reference={'0': 30.0, '1': 34.0, '7': 99.0})
    points = s['convergence']['sbm@0.75']
    assert list(points) == ['0', '1', '2']
    assert points['0']['mean'] == pytest.approx(32.0)
    assert points['0']['values'] == [30.0, 34.0]
    md = sweep.render_markdown(dict(summary=s))
    assert '| run | epoch 0 | epoch 1 | epoch 2 |' in md
    assert ('| SBM (salience, fixed ratio) at 0.75 | 32.00 ± 2.00 | '
            '52.00 ± 2.00 | 60.00 ± 0.00 |') in md


def test_report_keeps_the_discussion(tmp_path, run_tool):
    """A new --report rewrites the generated part of the markdown and keeps
    the hand-written text from the marker on."""
    work = tmp_path / 'sweep'
    run_dir = work / 'mae_r0.75_s0'
    run_dir.mkdir(parents=True)
    (run_dir / 'result.json').write_text(json.dumps(dict(
        _run('mae', 0.75, 0, 70.0), epochs=1, linear_epochs=0,
        config='c.py')))
    out = tmp_path / 'results.md'
    out.write_text('old generated table\n' + sweep.DISCUSSION_MARKER
                   + '\n## Verdict\nwritten by hand\n')
    run_tool(TOOL, '--report', '--work-dir', work, '--report-out', out,
             check=True, timeout=120)
    text = out.read_text()
    assert 'old generated table' not in text
    assert '| MAE (random) | 70.00 ± 0.00 |' in text
    assert text.endswith(sweep.DISCUSSION_MARKER
                         + '\n## Verdict\nwritten by hand\n')
    assert text.count(sweep.DISCUSSION_MARKER) == 1
    assert (tmp_path / 'results_ratio_sweep.png').is_file()
    assert (work / 'results.json').is_file()


def test_amr_ratio_var_stays_valid():
    assert sweep.amr_ratio_var(0.75) == pytest.approx(0.1)
    assert sweep.amr_ratio_var(0.45) == pytest.approx(0.1)
    assert sweep.amr_ratio_var(0.9) == pytest.approx(0.05)
    for r in (0.05, 0.45, 0.6, 0.75, 0.9, 0.95):
        rv = sweep.amr_ratio_var(r)
        assert 0 < r - rv and r + rv < 1


def test_schedule_options_fit_the_epochs():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, sweep.PRETRAIN_CONFIG))
    opts = sweep.schedule_options(cfg, 3)
    assert opts == ['train_cfg.max_epochs=3', 'param_scheduler.1.end=3',
                    'param_scheduler.1.T_max=2']
    # shorter than warm-up + 1 epoch: warm-up squeezed into the first half
    opts = sweep.schedule_options(cfg, 1)
    assert 'param_scheduler.0.end=0.5' in opts
    assert 'param_scheduler.1.begin=0.5' in opts
    assert 'param_scheduler.1.T_max=0.5' in opts


def test_dry_run_names_existing_tools(tmp_path, run_tool):
    """Every command of a dry run starts a tool that exists, with the
    method's backbone and, for SBAM, its AMR settings."""
    proc = run_tool(TOOL, '--dry-run', '--work-dir', tmp_path, '--ratios',
                    '0.9', '--seeds', '0', check=True, timeout=120)
    lines = proc.stdout.splitlines()
    assert lines[-1] == '# 3 runs'
    cmds = [shlex.split(line.split('same as): ')[-1]) for line in lines
            if ' tools/' in line]
    assert len(cmds) == 3 * 4  # pre-train, k-NN, linear train and test
    tools = {cmd[1] for cmd in cmds}
    assert tools == {sweep.TRAIN_TOOL, sweep.TEST_TOOL, sweep.KNN_TOOL}
    assert all(osp.isfile(osp.join(ROOT, tool)) for tool in tools)
    sbam = next(line for line in lines if 'amr.mode=sample' in line)
    assert 'model.backbone.type=SBAMViT' in sbam
    assert 'model.backbone.amr.ratio_var=0.05' in sbam
    assert '# sbam_r0.90_s0 (AMR ratio_var 0.05)' in lines


@pytest.mark.slow
def test_smoke_sweep_and_report(tmp_path, run_tool):
    """4 one-epoch pre-trainings on 32 images (2 at a time), k-NN,
    aggregate, report, resume; about 50 s on 2 cores."""
    work = str(tmp_path / 'sweep')
    args = ['--work-dir', work, '--epochs', '1', '--seeds', '0', '--ratios',
            '0.6', '0.9', '--methods', 'mae', 'sbam', '--linear-epochs', '0',
            '--calibrate-iters', '0', '--jobs', '2', '--init-reference',
            '--cfg-options', 'train_dataloader.dataset.indices=32',
            'train_dataloader.batch_size=16']
    run_tool(TOOL, *args, check=True, timeout=300)
    with open(osp.join(work, 'results.json')) as f:
        data = json.load(f)
    assert len(data['runs']) == 4
    assert {(r['method'], r['ratio']) for r in data['runs']} == {
        ('mae', 0.6), ('mae', 0.9), ('sbam', 0.6), ('sbam', 0.9)}
    by = {(r['method'], r['ratio']): r for r in data['runs']}
    assert by[('sbam', 0.9)]['ratio_var'] == pytest.approx(0.05)
    assert by[('mae', 0.6)]['ratio_var'] is None
    for r in data['runs']:
        assert 0 <= r['knn_top1'] <= 100
        assert osp.isfile(r['checkpoint'])
        assert 'model.backbone.type=' in r['commands']['pretrain']
        assert sweep.KNN_TOOL in r['commands']['knn']
        # a real, logged MMEngine run in its own work dir
        assert osp.isfile(osp.join(r['run_dir'], 'result.json'))
        assert osp.isfile(osp.join(r['run_dir'], 'pretrain.log'))
    knn = data['summary']['knn_top1']
    assert set(knn['table']) == {'mae', 'sbam'}
    assert set(knn['table']['mae']) == {'0.60', '0.90'}
    assert set(knn['mean_gain_over_mae']) == {'sbam'}
    assert data['meta']['wall_s'] > 0
    assert data['meta']['command'].startswith(f'python {TOOL} ')
    with open(osp.join(work, 'results.md')) as f:
        md = f.read()
    assert '| method | 0.60 | 0.90 | spread across ratios | ' \
        'mean gain over MAE |' in md
    assert md.count('| MAE (random) |') == 1
    assert 0 <= data['init_reference']['0'] <= 100
    assert 'k-NN top-1 of the initial weights' in md
    assert osp.isfile(osp.join(work, 'results_ratio_sweep.png'))
    # --resume-sweep skips every finished run
    proc = run_tool(TOOL, *args, '--resume-sweep', check=True, timeout=300)
    assert proc.stdout.count('result exists, skipped') == 4
