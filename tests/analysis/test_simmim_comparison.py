"""The SimMIM comparison's pieces: options that reach the pipeline's mask
generator, k-NN features of a Swin (feature maps, no class token), and the
mask content measure at the arm's own count."""
import os

import pytest
import torch

from conftest import ROOT
from mmsbam.analysis.models import load_config
from mmsbam.analysis.simmim_comparison import (ARMS, mask_content_of,
                                               mask_generator_index,
                                               pretrain_options)


@pytest.mark.parametrize('arm', list(ARMS))
def test_options_set_the_pipeline_mask_ratio(arm):
    config = os.path.join(ROOT, ARMS[arm])
    opts = pretrain_options(config, 0.4, 3, 1, 1000)
    index = mask_generator_index(config)
    pipeline = load_config(config).train_dataloader.dataset.pipeline
    assert pipeline[index]['type'] == 'SimMIMMaskGenerator'
    assert f'train_dataloader.dataset.pipeline.{index}.mask_ratio=0.4' in opts
    assert 'randomness.seed=1' in opts
    assert 'train_dataloader.dataset.indices=1000' in opts


def test_arms_differ_only_in_the_backbone_and_hook():
    random_cfg = load_config(os.path.join(ROOT, ARMS['random']))
    sbam_cfg = load_config(os.path.join(ROOT, ARMS['sbam']))
    assert random_cfg.model.backbone.type == 'SimMIMSwinTransformer'
    assert sbam_cfg.model.backbone.type == 'SBAMSimMIMSwinTransformer'
    assert random_cfg.train_dataloader == sbam_cfg.train_dataloader


def test_swin_knn_features_are_pooled_feature_maps(fashion_mnist,
                                                   monkeypatch):
    from mmsbam.analysis.models import eval_config
    from mmsbam.evaluation.knn import (build_encoder_model, extract_features,
                                       split_loader)
    monkeypatch.chdir(ROOT)
    cfg = eval_config(ARMS['sbam'],
                      dict(test_dataloader=dict(dataset=dict(indices=20))))
    model = build_encoder_model(cfg)
    feats, labels = extract_features(model, split_loader(cfg, True, 10),
                                     feature='avg', log_every=0)
    assert feats.shape == (20, 96) and labels.shape == (20, )
    assert torch.allclose(feats.norm(dim=1), torch.ones(20))
    with pytest.raises(ValueError, match='class token'):
        extract_features(model, split_loader(cfg, True, 10), feature='cls',
                         log_every=0)


def test_mask_content_of_an_untrained_sbam_arm(fashion_mnist, tmp_path,
                                               monkeypatch):
    """SBAM masks at the arm's count; the garment share is a fraction."""
    from mmsbam.analysis.models import eval_config
    from mmsbam.evaluation.knn import build_encoder_model
    monkeypatch.chdir(ROOT)
    model = build_encoder_model(eval_config(ARMS['sbam']))
    ckpt = str(tmp_path / 'init.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = mask_content_of(ARMS['sbam'], ckpt, 0.6, num_images=50)
    assert set(out) == {'masked_fg', 'fg_hidden', 'fg_share'}
    assert all(0 <= v <= 1 for v in out.values())
