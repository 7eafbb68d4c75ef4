"""The SimMIM study (``mmsbam/experiments/studies/simmim.py``): its spec,
options that reach the pipeline's mask generator (those of the stored
runs), the page rendered from the stored results, k-NN features of a Swin
and the mask content measure at the arm's own count."""
import json
import os.path as osp
import shlex

import pytest
import torch

from mmsbam.experiments import get_study
from mmsbam.experiments.runner import pretrain_options
from mmsbam.experiments.schedule import cfg_options_dict, load_cfg
from mmsbam.experiments.studies import simmim
from mmsbam.experiments.studies._mim_measures import fmt_cell, num
from mmsbam.experiments.study import DISCUSSION_MARKER

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _stored():
    with open(osp.join(ROOT, 'docs/results_simmim.json')) as f:
        return json.load(f)


def test_spec_is_the_stored_comparison():
    spec = get_study('simmim').build()
    assert [a.name for a in spec.arms] == ['random', 'sbam', 'sbam-t48']
    assert (spec.seeds, spec.epochs, spec.ratios, spec.images) == (
        (0, 1), 4, (0.4, 0.6), 0)
    assert spec.cells()[0].name == 'random_r0.40_s0'
    assert [e.name for e in spec.evaluators] == ['knn', 'linear_probe',
                                                 'mask_content']


@pytest.mark.parametrize('arm', list(simmim.CONFIGS))
def test_options_set_the_pipeline_mask_ratio(arm, monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = simmim.build(seeds=(1, ), ratios=(0.4, ), epochs=3)
    cell, = [c for c in spec.cells() if c.arm.name == arm]
    cfg = load_cfg(cell.arm.config, pretrain_options(spec, cell))
    gen = cfg.train_dataloader.dataset.pipeline[
        simmim.mask_generator_index(cell.arm.config)]
    assert gen['type'] == 'SimMIMMaskGenerator'
    assert gen['mask_ratio'] == 0.4
    assert cfg.randomness.seed == 1 and cfg.train_cfg.max_epochs == 3


@pytest.mark.parametrize('index', range(10))
def test_options_are_the_stored_runs(index, monkeypatch):
    """Same settings as each stored command (order aside); the harness
    adds only the checkpoint retention."""
    monkeypatch.chdir(ROOT)
    run = _stored()['runs'][index]
    spec = simmim.build()
    cell, = [c for c in spec.cells() if c.name == run['cell']]
    new = cfg_options_dict(pretrain_options(spec, cell))
    words = shlex.split(run['command'])
    old = cfg_options_dict(words[words.index('--cfg-options') + 1:])
    assert new.pop('default_hooks.checkpoint.max_keep_ckpts') == 1
    assert new == old


def test_arms_differ_only_in_the_backbone_and_salience():
    cfgs = {n: load_cfg(osp.join(ROOT, c[1]))
            for n, c in simmim.CONFIGS.items()}
    assert cfgs['random'].model.backbone.type == 'SimMIMSwinTransformer'
    assert cfgs['sbam'].model.backbone.type == 'SBAMSimMIMSwinTransformer'
    assert cfgs['random'].train_dataloader == cfgs['sbam'].train_dataloader
    assert cfgs['sbam-t48'].train_dataloader == cfgs['sbam'].train_dataloader


def test_stored_page_is_its_render():
    """The committed page is the render of the committed results (same
    tables, same figures, rounded half up as first written) followed by
    the hand-written discussion."""
    stored = _stored()
    text, data = simmim.render(simmim.build(), stored['runs'],
                               stored['baselines'])
    with open(osp.join(ROOT, 'docs/results_simmim.md')) as f:
        page = f.read()
    cut = page.index(DISCUSSION_MARKER)
    assert text[:text.index(DISCUSSION_MARKER)] == page[:cut]
    assert '| random @ 0.4 | **75.04 ± 0.11** | **64.90 ± 0.06** | 0.599 |' \
        in text
    assert set(data['summary']) == {'random @ 0.4', 'sbam @ 0.4',
                                    'sbam-t48 @ 0.4', 'random @ 0.6',
                                    'sbam @ 0.6'}


def test_numbers_round_halves_up():
    assert num(64.895, 2) == '64.90' and num(0.054999999999999716,
                                             2) == '0.06'
    assert num(64.895, 2, half_up=False) == '64.89'
    assert fmt_cell(dict(mean=0.599, spread=0.0, n=2), 3,
                    drop_zero_spread=True) == '0.599'
    assert fmt_cell(dict(mean=0.599, spread=0.0, n=2), 3) == '0.599 ± 0.000'


def test_swin_knn_features_are_pooled_feature_maps(fashion_mnist,
                                                   monkeypatch):
    from mmsbam.analysis.models import eval_config
    from mmsbam.evaluation.knn import (build_encoder_model, extract_features,
                                       split_loader)
    monkeypatch.chdir(ROOT)
    cfg = eval_config(simmim.CONFIGS['sbam'][1],
                      dict(test_dataloader=dict(dataset=dict(indices=20))))
    model = build_encoder_model(cfg)
    feats, labels = extract_features(model, split_loader(cfg, True, 10),
                                     feature='avg', log_every=0)
    assert feats.shape == (20, 96) and labels.shape == (20, )
    assert torch.allclose(feats.norm(dim=1), torch.ones(20))


def test_mask_content_of_an_untrained_sbam_arm(fashion_mnist, tmp_path,
                                               monkeypatch):
    """SBAM masks at the arm's count; the garment shares are fractions,
    the same for every call (masks drawn under the measure's seed)."""
    from mmsbam.analysis.models import eval_config
    from mmsbam.evaluation.knn import build_encoder_model
    monkeypatch.chdir(ROOT)
    config = simmim.CONFIGS['sbam'][1]
    model = build_encoder_model(eval_config(config))
    ckpt = str(tmp_path / 'init.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    measure = simmim.SimMIMMaskContent(images=50)
    out = measure.measure(config, ckpt, 0.6)
    assert set(out) == {'masked_fg', 'fg_hidden', 'fg_share'}
    assert all(0 <= v <= 1 for v in out.values())
    assert measure.measure(config, ckpt, 0.6) == out
