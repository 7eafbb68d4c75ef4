"""The iBoT study (``mmsbam/experiments/studies/ibot.py``): its spec, the
configs its options make (those of the stored runs), the page rendered
from the stored results, a report from a tiny fake result set, and the
teacher measures on an untrained model."""
import json
import os.path as osp
import shlex

import pytest
import torch

from mmsbam.experiments import get_study, report
from mmsbam.experiments.runner import CellRun, pretrain_options
from mmsbam.experiments.schedule import cfg_options_dict, load_cfg
from mmsbam.experiments.studies import ibot
from mmsbam.experiments.study import DISCUSSION_MARKER

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _stored():
    with open(osp.join(ROOT, 'docs/results_ibot.json')) as f:
        return json.load(f)


def test_spec_is_the_stored_comparison():
    spec = ibot.build()
    assert get_study('ibot').build().name == 'ibot'
    assert [a.name for a in spec.arms] == ['ibot', 'ibot-sbam',
                                           'ibot-clsrow']
    assert (spec.seeds, spec.epochs, spec.images) == ((0, 1), 3, 0)
    assert [c.name for c in spec.cells()] == [
        'ibot_s0', 'ibot-sbam_s0', 'ibot-clsrow_s0', 'ibot_s1',
        'ibot-sbam_s1', 'ibot-clsrow_s1']  # no ratio axis
    assert [e.name for e in spec.evaluators] == [
        'teacher', 'teacher_knn', 'linear_probe', 'mask_content',
        'loss_windows']
    assert spec.evaluators[-1].after_epoch == 1


def test_arms_differ_in_the_mask_generator():
    gens = {a.name: load_cfg(osp.join(ROOT, a.config)).model.mask_generator
            for a in ibot.ARMS}
    assert gens['ibot'].type == 'iBOTBlockMaskGenerator'
    assert gens['ibot-sbam'].type == 'iBOTSalienceMaskGenerator'
    assert gens['ibot-sbam'].get('teacher_rows', 'all') == 'all'
    assert gens['ibot-clsrow'].teacher_rows == 'cls'


@pytest.mark.parametrize('index', range(6))
def test_options_are_the_stored_runs(index, monkeypatch):
    """Every schedule ends with the run (LR cosine and weight decay), as
    the stored command set it; only the checkpoint retention is added."""
    monkeypatch.chdir(ROOT)
    run = _stored()['runs'][index]
    spec = ibot.build()
    cell, = [c for c in spec.cells() if c.name == run['cell']]
    new = cfg_options_dict(pretrain_options(spec, cell))
    words = shlex.split(run['command'])
    old = cfg_options_dict(words[words.index('--cfg-options') + 1:])
    assert new == old
    cfg = load_cfg(cell.arm.config, pretrain_options(spec, cell))
    assert cfg.param_scheduler[1].end == cfg.param_scheduler[2].end == 3


def test_stored_page_is_its_render():
    """The committed page is the render of the committed results (same
    tables, same figures) followed by the hand-written discussion."""
    stored = _stored()
    text, data = ibot.render(ibot.build(page=''), stored['runs'],
                             stored['baselines'])
    with open(osp.join(ROOT, 'docs/results_ibot.md')) as f:
        page = f.read()
    cut = page.index(DISCUSSION_MARKER)
    assert text[:text.index(DISCUSSION_MARKER)] == page[:cut]
    assert '| ibot | 67.68 ± 0.13 | 65.19 ± 0.60 |' in text
    assert data['summary']['ibot']['knn']['n'] == 2


def _fake_run(arm, seed, knn):
    return dict(cell=f'{arm}_s{seed}', arm=arm, ratio=None, seed=seed,
                epochs=3, images=0, knn=knn, linear=60.0, auc_all=0.6,
                auc_cls=0.8, masked_fg=0.6, fg_hidden=0.4, fg_share=0.5,
                loss_first_t=7.5, loss_last_t=7.25,
                time_s=dict(pretrain=600.0))


def test_report_from_stored_results_keeps_them_and_the_discussion(
        tmp_path):
    runs = [_fake_run(a, s, 70.0 + s) for s in (0, 1)
            for a in ('ibot', 'ibot-sbam')]
    results, page = tmp_path / 'r.json', tmp_path / 'p.md'
    results.write_text(json.dumps(dict(spec='ibot', runs=runs, baselines={
        'initial_weights': {'0': {'knn_top1': 64.0}}})))
    page.write_text(f'old\n{DISCUSSION_MARKER}\n\nHand-written.\n')
    spec = ibot.build(arms=ibot.ARMS[:2], work_dir=str(tmp_path / 'none'),
                      results=str(results), page=str(page))
    report(get_study('ibot'), spec)
    text = page.read_text()
    assert '| ibot | 70.50 ± 0.50 | 60.00 ± 0.00 |' in text
    assert '| ibot-sbam | 1 | 71.00 |' in text
    assert '7.500 → 7.250 | 10.0 |' in text
    assert 'k-NN 64.00 % (seed 0)' in text
    assert text.endswith(f'{DISCUSSION_MARKER}\n\nHand-written.\n')
    assert text.count(DISCUSSION_MARKER) == 1
    assert len(json.loads(results.read_text())['runs']) == 4
    # one finished cell in the work dir: merged by cell name, the stored
    # cells of the other arms and seeds kept
    (tmp_path / 'none' / 'ibot_s0').mkdir(parents=True)
    (tmp_path / 'none' / 'ibot_s0' / 'result.json').write_text(
        json.dumps(_fake_run('ibot', 0, 99.0)))
    report(get_study('ibot'), spec, run_baseline=False)
    assert len(json.loads(results.read_text())['runs']) == 4
    text = page.read_text()
    assert '| ibot | 0 | 99.00 |' in text  # the new cell replaces its own
    assert '| ibot-sbam | 1 | 71.00 |' in text


def test_teacher_measures_on_an_untrained_model(fashion_mnist, tmp_path,
                                                monkeypatch):
    """The teacher is extracted into a backbone checkpoint that loads
    strictly; the mask content is a set of fractions and AUCs."""
    from mmsbam.analysis.models import eval_config, load_weights
    from mmsbam.evaluation.knn import build_encoder_model
    monkeypatch.chdir(ROOT)
    arm = ibot.ARMS[1]  # ibot-sbam: SBM on the teacher's attention
    torch.manual_seed(0)
    model = build_encoder_model(eval_config(arm.config))
    with torch.no_grad():  # teacher != student, so extraction is seen
        model.teacher.module[0].cls_token.add_(1.0)
    spec = ibot.build(arms=(arm, ), seeds=(0, ), epochs=1)
    run = CellRun(spec, spec.cells()[0], str(tmp_path))
    (tmp_path / 'pretrain').mkdir()
    torch.save(dict(state_dict=model.state_dict()), run.checkpoint())
    path = ibot.ExtractTeacher()(run)['teacher_checkpoint']
    assert path == ibot.teacher_checkpoint(run) == str(tmp_path /
                                                        'teacher.pth')
    fresh = build_encoder_model(eval_config(arm.config))
    load_weights(fresh, path, strict=True)
    assert torch.equal(fresh.backbone.cls_token,
                       model.teacher.module[0].cls_token)
    assert not torch.equal(fresh.backbone.cls_token,
                           model.backbone.cls_token)
    out = ibot.IBOTMaskContent(images=40).measure(arm.config,
                                                  run.checkpoint())
    assert set(out) == {'auc_all', 'auc_cls', 'masked_fg', 'fg_hidden',
                        'fg_share'}
    assert all(0 <= v <= 1 for v in out.values())
