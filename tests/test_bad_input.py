"""Bad input, tried as a new user would: each case gets an error that names
the problem and the fix, or a documented safe behaviour (docs/reproducibility.md,
"What happens with bad input"). In-process where possible; three tool runs.
"""
import copy
import math
import os
import os.path as osp
import re
from typing import Any, List, NamedTuple, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmpretrain.registry import HOOKS, MODELS, OPTIM_WRAPPERS

from conftest import ROOT, _run_tool
from mmsbam.compat import atomic_checkpoint_saves
from mmsbam.engine.hooks import NonFiniteLossHook
from mmsbam.engine.launch import preflight, run
from mmsbam.engine.preflight import (check_checkpoint_compatible,
                                     check_dataset_built)

PRETRAIN = osp.join(ROOT,
                    'configs/fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py')
LINEAR = osp.join(ROOT, 'configs/fmnist/vit-tiny-p4_linear-10e_fmnist.py')
AMR = dict(ratio_var=0.1, delta=0.2)


def run_train(*args):
    proc = _run_tool('tools/train.py', *args, check=False)
    return proc.returncode, proc.stdout


def _images(n=2, channels=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, size, size, generator=g)


# ------------------------------------------------ 1. invalid config values
# One row per (component, key, bad value): the error names the key and its
# allowed range. Built in-process from config dicts, as the Runner does.
ARCH = dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
HIVIT = dict(embed_dims=32, depths=[1, 1, 2], num_heads=4)
VIT = dict(arch=ARCH, img_size=32, patch_size=4, mask_ratio=0.75)
BEIT = dict(arch=ARCH, img_size=32, patch_size=4, init_cfg=None,
            masker=dict(mask_ratio=0.75))
BASE = {
    'SalienceMaskGenerator': {},
    'SalienceBlockMaskGenerator': {},
    'AdaptiveMaskRatio': dict(base_ratio=0.75),
    'SalienceMasker': dict(mask_ratio=0.75),
    'iBOTBlockMaskGenerator': {},
    'iBOTSalienceMaskGenerator': {},
    'SBAMViT': dict(VIT, patch_cfg=dict(in_channels=1)),
    'SBAMMFFViT': dict(VIT, out_indices=[0, 1]),
    'SBAMMILANViT': VIT,
    'SBAMMAEHiViT': dict(arch=HIVIT, img_size=64, mask_ratio=0.75),
    'SBAMiTPNHiViT': dict(arch=HIVIT, img_size=64, mask_ratio=0.75),
    'SBAMBEiTPretrainViT': BEIT,
    'SBAMCAEPretrainViT': dict(BEIT, layer_scale_init_value=0.1),
    'SBAMMaskFeatViT': BEIT,
    'SBAMSimMIMSwinTransformer': dict(
        arch=dict(embed_dims=32, depths=[1, 1], num_heads=[2, 4]),
        img_size=32, out_indices=(1, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=4)),
        mask_unit=2),
    'iBOTViT': dict(arch=ARCH, img_size=32, patch_size=4),
    'iBOTNeck': dict(in_channels=32, hidden_channels=16,
                     bottleneck_channels=8, out_channels=16,
                     patch_out_channels=16),
    'iBOTHead': dict(out_channels=16, patch_out_channels=16),
    'iBOT': dict(
        backbone=dict(type='iBOTViT', arch=ARCH, img_size=32, patch_size=4),
        neck=dict(type='iBOTNeck', in_channels=32, hidden_channels=16,
                  bottleneck_channels=8, out_channels=16,
                  patch_out_channels=16),
        head=dict(type='iBOTHead', out_channels=16, patch_out_channels=16)),
    'SBAMHook': {},
    'NonFiniteLossHook': {},
    'iBOTTeacherTempHook': {},
    'iBOTOptimWrapper': dict(
        optimizer=dict(type='AdamW', lr=1e-3),
        paramwise_cfg=dict(custom_keys=dict(last_layer=dict(
            last_layer=True)))),
}
BASE['AmpiBOTOptimWrapper'] = BASE['iBOTOptimWrapper']
BASE['SBAMCAE'] = dict(
    backbone=dict(BASE['SBAMCAEPretrainViT'], type='SBAMCAEPretrainViT'),
    neck=dict(type='SBAMCAENeck', num_classes=64, embed_dims=32, num_heads=4,
              regressor_depth=1, decoder_depth=1, mask_tokens_num=12,
              layer_scale_init_value=0.1),
    head=dict(type='CAEHead', loss=dict(type='CAELoss', lambd=2)),
    target_generator=dict(type='DALL-E', n_hid=8, vocab_size=64))
#: Methods mmsbam provides: the model of their Fashion-MNIST configs.
CMAE_MODEL = Config.fromfile(
    osp.join(ROOT, 'configs/fmnist/cmae_vit-tiny-p4_1xb256-5e_fmnist.py')
).model.to_dict()
CMAE_MODEL.pop('type')
BASE['CMAE'] = CMAE_MODEL
BASE['CMAEViT'] = {k: v for k, v in CMAE_MODEL['backbone'].items()
                   if k != 'type'}
BASE['SBAMCMAEViT'] = dict(BASE['CMAEViT'], mask_ratio=0.75)
BOOTMAE_MODEL = Config.fromfile(
    osp.join(ROOT, 'configs/fmnist/bootmae_vit-tiny-p4_1xb256-5e_fmnist.py')
).model.to_dict()
BOOTMAE_MODEL.pop('type')
BASE['BootMAE'] = BOOTMAE_MODEL
BASE['BootMAEViT'] = {k: v for k, v in BOOTMAE_MODEL['backbone'].items()
                      if k != 'type'}
BASE['SBAMBootMAEViT'] = BASE['BootMAEViT']
BASE['BootMAENeck'] = {k: v for k, v in BOOTMAE_MODEL['neck'].items()
                       if k != 'type'}
BASE['BootMAEHead'] = {k: v for k, v in BOOTMAE_MODEL['head'].items()
                       if k != 'type'}
BASE['BootMAEMaskGenerator'] = {}
BASE['BootMAEDecoder'] = dict(embed_dim=32, decoder_embed_dim=24, depth=1,
                              num_heads=4, num_patches=49, target='pixel',
                              patch_size=4, in_chans=1)
#: Registered components without arguments, or (``SBAMCAENeck``) with only
#: the stock class's arguments, unchanged.
NO_ARGUMENTS = ('RandomMaskGenerator', 'RandomStateHook', 'SBAMCAENeck')

R01, R01_CLOSED, POS, NONNEG = r'\(0, 1\)', r'\[0, 1\]', r'> 0', r'>= 0'


class Bad(NamedTuple):
    """``type`` built with ``key`` (dotted for nested dicts) set to
    ``value`` (and the valid settings ``also``, for a key whose range
    depends on another) raises ``ValueError``/``TypeError`` whose message
    matches each regex of ``says`` (the key, then the allowed range)."""
    type: str
    key: str
    value: Any
    says: Tuple[str, ...]
    also: dict = {}


def _masker_rows(t: str, prefix: str = '') -> List[Bad]:
    """The masker's own arguments, given as ``t``'s arguments."""
    p = prefix
    return [
        Bad(t, p + 'temperature', 0, ('temperature', POS)),
        Bad(t, p + 'temperature', float('inf'), ('temperature', 'finite')),
        Bad(t, p + 'noise_scale', -0.5, ('noise_scale', NONNEG)),
        Bad(t, p + 'salience_source', 'pixels', (
            'salience_source', "'embedding'")),
        Bad(t, p + 'amr', dict(ratio_var=0.5), (
            'ratio_var', r'must be < 0.25')),
        Bad(t, p + 'amr', dict(delta=1.5), ('amr.delta', R01_CLOSED)),
        Bad(t, p + 'amr', dict(mode='images'), ('amr.mode', "'batch'")),
        Bad(t, p + 'amr', dict(ratio=0.1), ('amr', "'ratio_var'")),
    ]


BAD = [
    # --------------------------------------------------- mask generators
    Bad('SalienceMaskGenerator', 'noise_scale', -1, ('noise_scale', NONNEG)),
    Bad('SalienceMaskGenerator', 'noise_scale', float('nan'), (
        'noise_scale', 'finite')),
    Bad('SalienceMaskGenerator', 'noise_scale', '0.5', ('noise_scale',
                                                        NONNEG)),
    Bad('SalienceBlockMaskGenerator', 'noise_scale', float('inf'), (
        'noise_scale', 'finite')),
    Bad('SalienceBlockMaskGenerator', 'min_num_patches', 0, (
        'min_num_patches', '>= 1')),
    Bad('SalienceBlockMaskGenerator', 'max_num_patches', 0.5, (
        'max_num_patches', '>= 1')),
    Bad('SalienceBlockMaskGenerator', 'max_num_patches', 8, (
        'max_num_patches', r'>= min_num_patches \(16\)')),
    Bad('SalienceBlockMaskGenerator', 'min_aspect', 0, ('min_aspect', POS)),
    Bad('SalienceBlockMaskGenerator', 'max_aspect', -2, ('max_aspect', POS)),
    Bad('SalienceBlockMaskGenerator', 'grid', (7, 0), (
        'grid', 'two positive integers')),
    Bad('iBOTBlockMaskGenerator', 'pred_ratio', (0.0, 1.5), (
        'pred_ratio', R01_CLOSED)),
    Bad('iBOTBlockMaskGenerator', 'pred_ratio', [], ('pred_ratio',
                                                     'non-empty')),
    Bad('iBOTBlockMaskGenerator', 'pred_ratio_var', 0.4, (
        'pred_ratio_var', r'\[0, min\(r, 1 - r\)\]')),
    Bad('iBOTBlockMaskGenerator', 'pred_ratio_var', [0.1, 0.1, 0.1], (
        'pred_ratio_var', 'one value or have as many entries')),
    Bad('iBOTBlockMaskGenerator', 'pred_aspect_ratio', (0.3, -1), (
        'pred_aspect_ratio', 'two positive')),
    Bad('iBOTBlockMaskGenerator', 'pred_aspect_ratio', (0.3, float('inf')),
        ('pred_aspect_ratio', 'finite')),
    Bad('iBOTBlockMaskGenerator', 'pred_shape', 'circle', (
        'pred_shape', "'block', 'rand'")),
    Bad('iBOTBlockMaskGenerator', 'pred_start_epoch', -1, (
        'pred_start_epoch', 'integer >= 0')),
    # ---------------------------------------------------------------- AMR
    Bad('AdaptiveMaskRatio', 'base_ratio', 1.0, ('base_ratio', R01)),
    Bad('AdaptiveMaskRatio', 'base_ratio', True, ('base_ratio', R01)),
    Bad('AdaptiveMaskRatio', 'ratio_var', -0.1, ('ratio_var', NONNEG)),
    Bad('AdaptiveMaskRatio', 'ratio_var', 0.3, (
        'ratio_var', r'inside \(0, 1\)', 'must be < 0.25')),
    Bad('AdaptiveMaskRatio', 'delta', float('nan'), ('delta', R01_CLOSED)),
    Bad('AdaptiveMaskRatio', 'mode', 'per-image', ('mode',
                                                   "'sample', 'batch'")),
    Bad('AdaptiveMaskRatio', 'sync', 'yes', ('amr.sync', 'True or False'),
        also=dict(mode='batch')),
    Bad('AdaptiveMaskRatio', 'sync', True, ('amr.sync', "mode='batch'")),
    # ---------------------------------------------------------- BootMAE
    Bad('BootMAE', 'feature_weight', float('inf'), ('feature_weight',
                                                    'finite', NONNEG)),
    Bad('BootMAE', 'feature_weight', -1, ('feature_weight', NONNEG)),
    Bad('BootMAE', 'feature_ramp_epochs', 0, ('feature_ramp_epochs', POS)),
    Bad('BootMAE', 'ema_decays', (0.999, 0.99, 0.9999), (
        'ema_decays', 'increasing', r'\(0, 1\)')),
    Bad('BootMAE', 'ema_epochs', (0, 2), ('ema_epochs', 'positive')),
    Bad('BootMAEHead', 'pixel_eps', 0, ('pixel_eps', POS)),
    Bad('BootMAEHead', 'feature_eps', float('inf'), ('feature_eps',
                                                     'finite')),
    Bad('BootMAEHead', 'patch_size', 0, ('patch_size', 'positive')),
    Bad('BootMAEMaskGenerator', 'num_masked', 100, (
        'num_masked', r'>= 120')),
    Bad('BootMAEMaskGenerator', 'max_block', 10, ('max_block', '>= 16')),
    Bad('BootMAEMaskGenerator', 'max_roll', -1, ('max_roll', r'\[0, 120\]')),
    Bad('BootMAEMaskGenerator', 'aspect_ratio', (2.0, 1.0), (
        'aspect_ratio', '0 < min <= max')),
    Bad('BootMAEViT', 'feature_layers', (0, 9), ('feature_layers',
                                                 r'\[-4, 3\]')),
    Bad('BootMAEViT', 'bootmae_mask_generator.num_masked', 30, (
        'bootmae_mask_generator.num_masked=30', 'masks 37 of 49')),
    Bad('SBAMBootMAEViT', 'teacher_rows', 'some', ('teacher_rows',
                                                   "'all' or 'cls'")),
    Bad('SBAMBootMAEViT', 'amr', dict(mode='sample'), ('amr',
                                                       "mode='batch'")),
    *_masker_rows('SBAMBootMAEViT'),
    Bad('BootMAENeck', 'num_patches', 50, ('num_patches', 'square')),
    Bad('BootMAEDecoder', 'target', 'depth', ('target', "'pixel', 'feature'")),
    Bad('BootMAEDecoder', 'num_patches', 48, ('num_patches', 'square')),
    # ------------------------------------------------------------- CMAE
    Bad('CMAE', 'base_momentum', 1.0, ('base_momentum', r'\[0, 1\)')),
    Bad('CMAE', 'end_momentum', -0.1, ('end_momentum', r'\[0, 1\)')),
    Bad('CMAE', 'rc_weight', float('nan'), ('rc_weight', 'finite', NONNEG)),
    Bad('CMAE', 'ct_weight', float('inf'), ('ct_weight', 'finite', NONNEG)),
    Bad('CMAE', 'feature_decoder.predict_feature_dim', 16, (
        'feature_decoder.predict_feature_dim=64', )),
    Bad('CMAEViT', 'mask_unit', 0, ('mask_unit', 'integer >= 1')),
    Bad('CMAEViT', 'mask_unit', 3, ('mask_unit=3', 'divide')),
    Bad('CMAEViT', 'mask_ratio', 1.0, ('mask_ratio', R01)),
    Bad('SBAMCMAEViT', 'mask_unit', 3, ('mask_unit=3', 'divide')),
    Bad('SBAMCMAEViT', 'amr', dict(mode='sample'), ('amr', "mode='batch'")),
    *_masker_rows('SBAMCMAEViT'),
    # ------------------------------------------------------------ masker
    Bad('SalienceMasker', 'mask_ratio', 0, ('mask_ratio', R01)),
    Bad('SalienceMasker', 'mask_ratio', '0.75', ('mask_ratio', R01)),
    *_masker_rows('SalienceMasker'),
    Bad('SalienceMasker', 'amr', 0.1, ('amr', 'a dict or None')),
    Bad('SalienceMasker', 'salience_layer', -1, ('salience_layer', r'\[0, '),
        also=dict(salience_source='attention')),
    Bad('SalienceMasker', 'mask_generator', 'SalienceMaskGenerator', (
        'mask_generator', 'dict')),
    # ---------------------------------------------- token-dropping models
    Bad('SBAMViT', 'mask_ratio', 1.5, ('mask_ratio', R01)),
    *_masker_rows('SBAMViT'),
    Bad('SBAMViT', 'masker', dict(type='SalienceMasker',
                                  salience_source='attention',
                                  salience_layer=2), (
        'salience_layer', r'\[0, 1\]')),
    Bad('SBAMViT', 'masker', dict(type='SalienceMasker', temperature=-1), (
        'temperature', POS)),
    Bad('SBAMViT', 'encoder_groups', 0, ('encoder_groups', '>= 1')),
    Bad('SBAMViT', 'masker', 'SalienceMasker', ('masker', 'dict')),
    Bad('SBAMViT', 'salience_layer', 1.5, ('salience_layer', r'\[0, '),
        also=dict(salience_source='attention')),
    Bad('SBAMViT', 'masker', dict(type='SalienceMasker', mask_ratio=0.5), (
        'masker.mask_ratio=0.5', 'mask_ratio=0.75')),
    Bad('SBAMViT', 'masker', dict(type='SalienceMasker'), (
        'masker', 'not both'), also=dict(noise_scale=0.1)),
    Bad('SBAMViT', 'check_finite', 'no', ('check_finite', 'True or False')),
    Bad('SBAMMFFViT', 'mask_ratio', -0.5, ('mask_ratio', R01)),
    *_masker_rows('SBAMMFFViT'),
    Bad('SBAMMILANViT', 'mask_ratio', 1, ('mask_ratio', R01)),
    Bad('SBAMMILANViT', 'amr', dict(mode='sample'), (
        'amr', "mode='sample'", "mode='batch'")),
    Bad('SBAMMILANViT', 'temperature', -1, ('temperature', POS)),
    Bad('SBAMMAEHiViT', 'mask_ratio', 1.2, ('mask_ratio', R01)),
    Bad('SBAMMAEHiViT', 'salience_source', 'attention', (
        'salience_source', r"\('embedding',\)")),
    Bad('SBAMMAEHiViT', 'amr', dict(mode='sample'), (
        "mode='sample'", "mode='batch'")),
    Bad('SBAMiTPNHiViT', 'mask_ratio', 0.0, ('mask_ratio', R01)),
    Bad('SBAMiTPNHiViT', 'noise_scale', -1, ('noise_scale', NONNEG)),
    # ------------------------------------------------- mask-token models
    *_masker_rows('SBAMBEiTPretrainViT', 'masker.'),
    Bad('SBAMBEiTPretrainViT', 'masker.mask_ratio', 2, ('mask_ratio', R01)),
    Bad('SBAMBEiTPretrainViT', 'mask_unit', 0, ('mask_unit', '>= 1')),
    Bad('SBAMBEiTPretrainViT', 'masker', 0.75, ('masker', 'dict')),
    Bad('SBAMBEiTPretrainViT', 'masker', dict(amr=dict(ratio_var=0.1)), (
        'amr needs mask_ratio', R01)),
    Bad('SBAMCAE', 'backbone.type', 'CAEPretrainViT', (
        'model.backbone.type', "'SBAMCAEPretrainViT'"),
        also=dict(backbone=dict(arch=ARCH, img_size=32, patch_size=4,
                                init_cfg=None, layer_scale_init_value=0.1))),
    Bad('SBAMCAE', 'neck.type', 'CAENeck', ('masker.amr', 'SBAMCAENeck'),
        also=dict(backbone=dict(BASE['SBAMCAEPretrainViT'],
                                type='SBAMCAEPretrainViT',
                                masker=dict(mask_ratio=0.75,
                                            amr=dict(mode='batch'))))),
    Bad('SBAMCAEPretrainViT', 'masker.amr', dict(mode='sample'), (
        'masker.amr', "mode='sample'", "mode='batch'")),
    Bad('SBAMCAEPretrainViT', 'masker.salience_source', 'attention', (
        'masker.salience_source', "'embedding'")),
    Bad('SBAMMaskFeatViT', 'mask_unit', 1.5, ('mask_unit', '>= 1')),
    Bad('SBAMMaskFeatViT', 'masker.noise_scale', -1, ('noise_scale',
                                                      NONNEG)),
    Bad('SBAMSimMIMSwinTransformer', 'mask_unit', -2, ('mask_unit', '>= 1')),
    Bad('SBAMSimMIMSwinTransformer', 'masker.temperature', 0, (
        'temperature', POS)),
    # --------------------------------------------------------------- iBoT
    Bad('iBOTViT', 'with_cls_token', False, ('with_cls_token', 'True')),
    Bad('iBOTNeck', 'num_layers', 0, ('num_layers', '>= 1')),
    Bad('iBOTNeck', 'shared_last_layer', 'no', ('shared_last_layer',
                                                'True or False')),
    Bad('iBOTNeck', 'norm_last_layer', 0, ('norm_last_layer',
                                           'True or False')),
    Bad('iBOTNeck', 'patch_out_channels', 8, (
        'patch_out_channels', 'shared_last_layer', 'out_channels')),
    Bad('iBOTNeck', 'out_channels', 0, ('out_channels', 'integer >= 1')),
    Bad('iBOTNeck', 'in_channels', -3, ('in_channels', 'integer >= 1')),
    Bad('iBOTNeck', 'hidden_channels', 0, ('hidden_channels',
                                           'integer >= 1')),
    Bad('iBOTNeck', 'bottleneck_channels', 2.5, ('bottleneck_channels',
                                                 'integer >= 1')),
    Bad('iBOTHead', 'out_channels', 0, ('out_channels', 'integer >= 1')),
    Bad('iBOTHead', 'patch_out_channels', -1, ('patch_out_channels',
                                               'integer >= 1')),
    Bad('iBOTHead', 'num_global_crops', 0, ('num_global_crops', '>= 1')),
    Bad('iBOTHead', 'num_local_crops', -1, ('num_local_crops', NONNEG)),
    Bad('iBOTHead', 'num_local_crops', 1.5, ('num_local_crops',
                                             'integer >= 0')),
    Bad('iBOTHead', 'num_local_crops', 0, (
        r'num_global_crops \+ num_local_crops must be >= 2', ),
        also=dict(num_global_crops=1)),
    Bad('iBOTHead', 'student_temp', 0, ('student_temp', POS)),
    Bad('iBOTHead', 'teacher_temp', float('inf'), ('teacher_temp',
                                                   'finite')),
    Bad('iBOTHead', 'teacher_patch_temp', '0.04', ('teacher_patch_temp',
                                                   POS)),
    Bad('iBOTHead', 'center_momentum', 1.5, ('center_momentum',
                                             R01_CLOSED)),
    Bad('iBOTHead', 'patch_center_momentum', -0.1, (
        'patch_center_momentum', R01_CLOSED)),
    Bad('iBOTHead', 'lambda1', float('nan'), ('lambda1', 'finite', NONNEG)),
    Bad('iBOTHead', 'lambda2', -1, ('lambda2', NONNEG)),
    Bad('iBOT', 'teacher_momentum', 1.0, ('teacher_momentum', r'\[0, 1\)')),
    Bad('iBOT', 'teacher_momentum', '0.99', ('teacher_momentum',
                                             r'\[0, 1\)')),
    Bad('iBOTSalienceMaskGenerator', 'salience_source', 'attention', (
        'salience_source', "'teacher' or 'embedding'")),
    Bad('iBOTSalienceMaskGenerator', 'teacher_rows', 'row', (
        'teacher_rows', "'all' or 'cls'")),
    Bad('iBOTSalienceMaskGenerator', 'masking_prob', 1.5, (
        'masking_prob', R01_CLOSED)),
    Bad('iBOTSalienceMaskGenerator', 'masking_prob', 'half', (
        'masking_prob', R01_CLOSED)),
    Bad('iBOTSalienceMaskGenerator', 'noise_scale', -1, ('noise_scale',
                                                         NONNEG)),
    Bad('iBOTSalienceMaskGenerator', 'temperature', 0, ('temperature', POS)),
    Bad('iBOTSalienceMaskGenerator', 'pred_ratio', (0.0, 2), (
        'pred_ratio', R01_CLOSED)),
    Bad('iBOTSalienceMaskGenerator', 'pred_start_epoch', 0.5, (
        'pred_start_epoch', 'integer >= 0')),
    Bad('iBOTSalienceMaskGenerator', 'amr', dict(base_ratio=1.5), (
        'amr.base_ratio', R01)),
    Bad('iBOTSalienceMaskGenerator', 'amr', dict(ratio_var=0.5), (
        'amr.ratio_var', 'amr.base_ratio=0.3', 'must be < 0.3')),
    Bad('iBOTSalienceMaskGenerator', 'amr', 0.3, ('amr', 'dict')),
    Bad('iBOTSalienceMaskGenerator', 'amr', dict(delta=-1), (
        'amr.delta', R01_CLOSED)),
    # -------------------------------------------------------------- hooks
    Bad('SBAMHook', 'warmup_epochs', -1, ('warmup_epochs', NONNEG)),
    Bad('SBAMHook', 'warmup_iters', 2.5, ('warmup_iters', NONNEG)),
    Bad('SBAMHook', 'interval', 0, ('interval', '>= 1')),
    Bad('SBAMHook', 'vis_interval', -5, ('vis_interval', NONNEG)),
    Bad('SBAMHook', 'vis_images', 0, ('vis_images', '>= 1')),
    Bad('SBAMHook', 'warmup_iters', 10, ('warmup_epochs or warmup_iters',
                                         'not both'),
        also=dict(warmup_epochs=1)),
    Bad('NonFiniteLossHook', 'patience', 0, ('patience', 'integer >= 1')),
    Bad('NonFiniteLossHook', 'patience', '3', ('patience', 'integer >= 1')),
    Bad('iBOTTeacherTempHook', 'teacher_temp', 0, ('teacher_temp', POS)),
    Bad('iBOTTeacherTempHook', 'warmup_teacher_temp', -0.04, (
        'warmup_teacher_temp', POS)),
    Bad('iBOTTeacherTempHook', 'teacher_patch_temp', float('inf'), (
        'teacher_patch_temp', 'finite')),
    Bad('iBOTTeacherTempHook', 'warmup_teacher_patch_temp', 'a', (
        'warmup_teacher_patch_temp', POS)),
    Bad('iBOTTeacherTempHook', 'warmup_epochs', -1, ('warmup_epochs',
                                                     'integer >= 0')),
    Bad('iBOTTeacherTempHook', 'pred_start_epoch', 1, (
        'pred_start_epoch', 'model.mask_generator.pred_start_epoch')),
    Bad('iBOTTeacherTempHook', 'by_epoch', 'False', ('by_epoch',
                                                     'True or False')),
    # ------------------------------------------------- optimizer wrappers
    *[row for t in ('iBOTOptimWrapper', 'AmpiBOTOptimWrapper') for row in [
        Bad(t, 'clip_grad', dict(type='per_param', max_norm=0), (
            'max_norm', POS)),
        Bad(t, 'clip_grad', dict(type='per_param', max_norm=3, norm_type=1),
            ('norm_type', 'only max_norm')),
        Bad(t, 'freeze_last_layer_epochs', -1, (
            'freeze_last_layer_epochs', 'integer >= 0')),
        Bad(t, 'freeze_last_layer_iters', 0.5, (
            'freeze_last_layer_iters', 'integer >= 0')),
    ]],
    Bad('iBOTOptimWrapper', 'paramwise_cfg', None, (
        'freeze_last_layer_epochs', 'last_layer=True')),
]


def _with(cfg: dict, key: str, value: Any) -> dict:
    """A deep copy of ``cfg`` with the dotted ``key`` set to ``value``."""
    cfg = copy.deepcopy(cfg)
    *path, last = key.split('.')
    node = cfg
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    return cfg


class _TaggedModel(torch.nn.Module):
    """What an iBoT optimizer wrapper needs: a ``last_layer`` to freeze."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(2, 2)
        self.last_layer = torch.nn.Linear(2, 2)


def build_component(type_: str, cfg: dict):
    """Build a registered mmsbam component from its config, as the Runner
    would (optimizer wrappers around a small tagged model)."""
    cfg = dict(type=type_, **copy.deepcopy(cfg))
    if type_ in OPTIM_WRAPPERS:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return build_optim_wrapper(_TaggedModel(), cfg)
    if type_ in HOOKS:
        return HOOKS.build(cfg)
    return MODELS.build(cfg)


def _mmsbam_components() -> List[str]:
    return sorted(name for reg in (MODELS, HOOKS, OPTIM_WRAPPERS)
                  for name, cls in reg.module_dict.items()
                  if cls.__module__.startswith('mmsbam'))


def test_table_covers_every_registered_component():
    """A new component with arguments adds rows to BAD."""
    with_rows = {row.type for row in BAD}
    missing = [name for name in _mmsbam_components()
               if name not in with_rows and name not in NO_ARGUMENTS]
    assert not missing
    assert set(BASE) == with_rows


@pytest.mark.parametrize('type_', sorted(BASE))
def test_table_base_configs_build(type_):
    """Each row changes one value of a config that builds."""
    if type_ == 'AmpiBOTOptimWrapper' and not torch.cuda.is_available():
        pytest.skip('AmpOptimWrapper needs a GPU (its rows are checked '
                    'before that)')
    build_component(type_, BASE[type_])


@pytest.mark.parametrize(
    'row', BAD, ids=[f'{r.type}-{r.key}={r.value!r}' for r in BAD])
def test_bad_value_names_key_and_range(row):
    cfg = dict(BASE[row.type], **row.also)
    with pytest.raises((ValueError, TypeError)) as info:
        build_component(row.type, _with(cfg, row.key, row.value))
    message = str(info.value)
    for fragment in row.says:
        assert re.search(fragment, message), (fragment, message)


# ------------- 1b. through the train entry: the error before any work dir
IBOT_SBAM = osp.join(
    ROOT, 'configs/fmnist/ibot-sbam_vit-tiny-p4_1xb128-5e_fmnist.py')
TEACHER_TEMPS = dict(type='iBOTTeacherTempHook', warmup_epochs=1)
#: (config, option, value, regexes): a subset of the table, set in shipped
#: configs, covering the model, its masker and AMR, hooks and the
#: optimizer wrapper (built by the Runner in train(), after its log).
THROUGH_RUN = [
    (PRETRAIN, 'model.backbone.mask_ratio', 1.5, ('mask_ratio', R01)),
    (PRETRAIN, 'model.backbone.amr', dict(ratio_var=0.3), (
        'amr.ratio_var', 'must be < 0.25')),
    (PRETRAIN, 'model.backbone.temperature', float('inf'), (
        'temperature', 'finite')),
    (PRETRAIN, 'custom_hooks', [dict(type='SBAMHook', vis_images=0)], (
        'vis_images', '>= 1')),
    (PRETRAIN, 'custom_hooks', [dict(type='NonFiniteLossHook', patience=0)],
     ('patience', 'integer >= 1')),
    (IBOT_SBAM, 'model.mask_generator.masking_prob', 1.5, (
        'masking_prob', R01_CLOSED)),
    (IBOT_SBAM, 'model.head.lambda2', float('nan'), ('lambda2', 'finite')),
    (IBOT_SBAM, 'model.neck.out_channels', 0, ('out_channels',
                                               'integer >= 1')),
    (IBOT_SBAM, 'custom_hooks', [dict(TEACHER_TEMPS, teacher_temp=0)], (
        'teacher_temp', POS)),
    (IBOT_SBAM, 'optim_wrapper.freeze_last_layer_epochs', -1, (
        'freeze_last_layer_epochs', 'integer >= 0')),
    (IBOT_SBAM, 'optim_wrapper.paramwise_cfg.custom_keys', {}, (
        'freeze_last_layer_epochs', 'last_layer=True')),
]


@pytest.mark.parametrize(
    'path, option, value, says', THROUGH_RUN,
    ids=[f'{osp.basename(r[0])[:8]}-{r[1]}' for r in THROUGH_RUN])
def test_bad_value_fails_before_the_work_dir(tmp_path, path, option, value,
                                             says):
    """``mmsbam.engine.launch.run`` (what tools/train.py calls: preflight,
    Runner, train) raises the component's error before the Runner creates
    the work dir: no log, no config dump, no checkpoint."""
    cfg = Config.fromfile(path)
    cfg.work_dir = str(tmp_path / 'work_dir')
    if option == 'optim_wrapper.paramwise_cfg.custom_keys':
        cfg.optim_wrapper.paramwise_cfg.custom_keys = value
        cfg.optim_wrapper.freeze_last_layer_epochs = 1
    else:
        cfg.merge_from_dict({option: value})
    register = torch.nn.Module.register_parameter
    with pytest.raises((ValueError, TypeError)) as info:
        run(cfg, train=True)
    for fragment in says:
        assert re.search(fragment, str(info.value)), str(info.value)
    assert not osp.exists(cfg.work_dir), os.listdir(cfg.work_dir)
    assert torch.nn.Module.register_parameter is register  # meta build


def test_bad_value_fails_before_the_work_dir_when_testing(tmp_path):
    """The same checks run for ``tools/test.py`` (``run(train=False)``)."""
    cfg = Config.fromfile(LINEAR)
    cfg.work_dir = str(tmp_path / 'work_dir')
    cfg.custom_hooks = [dict(type='NonFiniteLossHook', patience=-1)]
    with pytest.raises(ValueError, match='patience must be an integer >= 1'):
        run(cfg, train=False)
    assert not osp.exists(cfg.work_dir)


def test_bad_config_value_through_train_tool(tmp_path):
    """The ValueError is the last line of the output, the exit status 1,
    and the work dir is not created."""
    work_dir = tmp_path / 'work_dir'
    rc, out = run_train(PRETRAIN, '--work-dir', str(work_dir),
                        '--cfg-options', 'model.backbone.amr.mode=foo')
    assert rc != 0
    assert re.search(r"ValueError: amr.mode must be one of \('sample', "
                     r"'batch'\), got 'foo'",
                     out.strip().splitlines()[-1]), out[-2000:]
    assert not osp.exists(work_dir)


# ------------------------------------------------- 2. image size vs patches
@pytest.mark.parametrize('size, extra', [
    (28, ''), (2, r'\(smaller than one patch\)'),
    (30, r'\(not a multiple of the patch size\)'),
])
def test_wrong_image_size_names_sizes_and_fix(build_backbone, size, extra):
    backbone = build_backbone()  # img_size 32, patch 4, 1 channel
    with pytest.raises(ValueError, match=(
            rf'{size}x{size} images {extra}.*img_size=\(32, 32\), '
            r'patch_size=4.*Resize or crop to 32x32 in the train pipeline')):
        backbone(_images(size=size))


def test_unmasked_forward_accepts_other_sizes(build_backbone):
    """Feature extraction interpolates the position embedding (stock ViT)."""
    backbone = build_backbone(out_type='cls_token')
    out = backbone(_images(size=48), mask=None)
    assert torch.isfinite(out[0]).all()


# ---------------------------------------------------------- 3. channels
def test_rgb_into_grayscale_model(build_backbone):
    with pytest.raises(ValueError, match=(
            r"3-channel images but patch_cfg.in_channels=1.*color_type="
            r"'grayscale'.*to_rgb only reorders")):
        build_backbone(in_channels=1)(_images(channels=3))


@pytest.mark.parametrize('mask', [True, None])
def test_grayscale_into_rgb_model(build_backbone, mask):
    with pytest.raises(ValueError, match=(
            r'1-channel images but patch_cfg.in_channels=3.*convert the '
            r'images to RGB.*patch_cfg.in_channels=1')):
        build_backbone(in_channels=3)(_images(channels=1), mask=mask)


def test_grayscale_through_rgb_preprocessor_is_broadcast():
    """Documented: a 3-value mean/std broadcasts a 1-channel image to 3
    identical channels, so such a model trains on replicated gray."""
    pre = MODELS.build(dict(type='SelfSupDataPreprocessor',
                            mean=[1., 2., 3.], std=[1., 1., 1.],
                            to_rgb=False))
    out = pre(dict(inputs=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
                   data_samples=None))
    assert out['inputs'].shape == (2, 3, 4, 4)


# ------------------------------------------------------ 4. checkpoints
def _cfg(path=PRETRAIN, **backbone):
    cfg = Config.fromfile(path)
    cfg.work_dir = '/nonexistent-work-dir'
    for k, v in backbone.items():
        cfg.model.backbone[k] = v
    return cfg


def _save_model(cfg, path):
    model = MODELS.build(copy.deepcopy(cfg.model))
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return model


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A checkpoint of the fmnist model and one of a wider ViT (128-d,
    another architecture: the ViT-L-into-ViT-B case at toy size)."""
    d = tmp_path_factory.mktemp('ckpts')
    same, wide = str(d / 'same.pth'), str(d / 'wide.pth')
    _save_model(_cfg(), same)
    wide_arch = dict(embed_dims=128, num_layers=4, num_heads=4,
                     feedforward_channels=256)
    cfg = _cfg(arch=wide_arch)
    cfg.model.neck.embed_dim = 128
    _save_model(cfg, wide)
    return dict(same=same, wide=wide)


def test_matching_checkpoint_passes(checkpoints):
    for key in ('load_from', 'resume'):
        cfg = _cfg()
        cfg.load_from, cfg.resume = checkpoints['same'], key == 'resume'
        check_checkpoint_compatible(cfg)


@pytest.mark.parametrize('resume', [False, True])
def test_other_architecture_checkpoint_is_refused(checkpoints, resume):
    cfg = _cfg()
    cfg.load_from, cfg.resume = checkpoints['wide'], resume
    what = 'resume' if resume else 'load_from'
    with pytest.raises(RuntimeError, match=(
            rf'(?s){what}: checkpoint .*wide.pth does not fit.*'
            r'backbone\.cls_token: checkpoint \(1, 1, 128\), model '
            r'\(1, 1, 64\).*another architecture')):
        preflight(cfg)


def test_truncated_checkpoint_is_named(checkpoints, tmp_path):
    broken = str(tmp_path / 'epoch_3.pth')
    with open(checkpoints['same'], 'rb') as src, open(broken, 'wb') as dst:
        dst.write(src.read()[:1000])
    cfg = _cfg()
    cfg.load_from = broken
    with pytest.raises(RuntimeError, match='cannot read checkpoint .*'
                       'epoch_3.pth.*truncated'):
        check_checkpoint_compatible(cfg)


def test_pretrained_init_other_architecture(checkpoints):
    """MMEngine alone only warns and keeps random weights (what the user
    saw before); tools/train.py refuses it."""
    cfg = _cfg(LINEAR)
    cfg.model.backbone.init_cfg.checkpoint = checkpoints['wide']
    model = MODELS.build(copy.deepcopy(cfg.model))
    logger = MMLogger.get_current_instance()
    records = []
    handler = type('H', (__import__('logging').Handler, ), dict(
        emit=lambda self, r: records.append(r.getMessage())))()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    assert any('size mismatch' in r for r in records)
    assert model.backbone.cls_token.shape == (1, 1, 64)  # random, not loaded
    with pytest.raises(RuntimeError, match=(
            r'model.backbone.init_cfg \(Pretrained\): checkpoint .*wide.pth '
            r'does not fit')):
        check_checkpoint_compatible(cfg)
    cfg.model.backbone.init_cfg.checkpoint = checkpoints['same']
    check_checkpoint_compatible(cfg)  # pre-training ckpt into linear probe


def test_test_tool_checkpoint_must_match_exactly(checkpoints):
    """tools/test.py: a pre-training checkpoint has no classifier head."""
    cfg = _cfg(LINEAR)
    cfg.load_from = cfg.model.backbone.init_cfg.checkpoint = \
        checkpoints['same']
    check_checkpoint_compatible(cfg)  # training: head missing is fine
    cfg.model.backbone.init_cfg.checkpoint = 'missing.pth'  # not run by test
    with pytest.raises(RuntimeError,
                       match=r'head\.layers\.head\.weight: missing'):
        check_checkpoint_compatible(cfg, for_test=True)


# ---------------------------------------------------------- 5. datasets
class _LazyRunner:
    """Stands in for the Runner: builds the dataloader on access."""

    def __init__(self, dataset):
        self.cfg = Config(dict(train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset)))

    @property
    def train_dataloader(self):
        return Runner.build_dataloader(copy.deepcopy(
            self.cfg.train_dataloader))


def test_empty_custom_dataset_folder(tmp_path):
    (tmp_path / 'train').mkdir()
    runner = _LazyRunner(dict(type='mmpretrain.CustomDataset',
                              data_root=str(tmp_path), data_prefix='train',
                              pipeline=[]))
    with pytest.raises(RuntimeError, match=(
            r"train_dataloader.dataset \(mmpretrain.CustomDataset "
            rf"data_root='{tmp_path}' data_prefix='train'\) could not be "
            r'built: Found 0 files')):
        check_dataset_built(runner)


@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_empty_subset_is_named_empty(tmp_path):
    """MMEngine's own message for an empty dataset is 'need at least one
    array to concatenate'."""
    runner = _LazyRunner(dict(type='mmpretrain.FashionMNIST',
                              data_root=osp.join(ROOT, 'data/fashion_mnist'),
                              download=False, indices=0, pipeline=[]))
    with pytest.raises(RuntimeError, match='The dataset is empty'):
        check_dataset_built(runner)


def test_empty_fashion_mnist_root_through_train_tool(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    rc, out = run_train(PRETRAIN, '--work-dir', str(tmp_path / 'wd'),
                        '--cfg-options',
                        f'train_dataloader.dataset.data_root={empty}')
    assert rc != 0
    last = out.strip().splitlines()[-1]
    assert 'train_dataloader.dataset (FashionMNIST' in last, out[-2000:]
    assert f'Cannot find FashionMNIST dataset in {empty}' in last
    assert not osp.exists(tmp_path / 'wd' / 'last_checkpoint')


# ------------------------------------------------------ 6. NaN / Inf pixels
@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_non_finite_pixels_raise(build_mae, value):
    model = build_mae()
    model.train()
    x = _images(2)
    x[1, 0, 3, 5] = value
    with pytest.raises(ValueError, match=r'1 NaN/Inf pixel values.*std of '
                       r'0.*check_finite=False'):
        model.loss(x, [None] * 2)


def test_check_finite_off_gives_nan_loss_not_a_crash(build_mae):
    """With the check off, the salience stays NaN-safe (masking proceeds)
    and the loss is NaN: NonFiniteLossHook is what stops training then."""
    model = build_mae(check_finite=False)
    model.train()
    x = _images(2)
    x[0, 0, 0, 0] = float('nan')
    loss = model.loss(x, [None] * 2)['loss']
    assert math.isnan(float(loss))
    mask = model.backbone.masker.last_masking.mask
    assert mask.sum(1).tolist() == [48.0, 48.0]


class _FakeRunner:
    iter, epoch = 6, 2

    def __init__(self, loss):
        self.message_hub = MessageHub.get_instance(f'bad-input-{loss}')
        self.message_hub.update_scalar('train/loss', loss)


def test_non_finite_loss_hook_stops_training():
    hook = NonFiniteLossHook()
    hook.after_train_iter(_FakeRunner(1.0), 0, outputs=dict(
        loss=torch.tensor(1.0)))
    with pytest.raises(FloatingPointError, match=(
            r'loss is nan at iteration 7 \(epoch 3\).*before saving a '
            r'checkpoint.*--resume')):
        hook.after_train_iter(_FakeRunner(float('nan')), 0, outputs=dict(
            loss=torch.tensor(float('nan'))))
    assert NonFiniteLossHook.priority == 'ABOVE_NORMAL'  # < CheckpointHook
    patient = NonFiniteLossHook(patience=2)
    patient.after_train_iter(_FakeRunner(float('inf')), 0,
                             outputs=dict(loss=torch.tensor(0.)))
    with pytest.raises(FloatingPointError):
        patient.after_train_iter(_FakeRunner(float('inf')), 0,
                                 outputs=dict(loss=torch.tensor(0.)))


def test_train_tool_adds_loss_hook_once():
    cfg = _cfg()
    preflight(cfg)
    preflight(cfg)
    assert [h['type'] for h in cfg.custom_hooks].count(
        'NonFiniteLossHook') == 1


def test_interrupted_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    """MMEngine writes straight to the final path: a failure mid-write
    truncates it. With atomic_checkpoint_saves the old file survives."""
    import mmengine.runner.runner as runner_module
    from mmengine.runner.checkpoint import save_checkpoint as plain_save
    target = str(tmp_path / 'epoch_2.pth')
    good = dict(state_dict=dict(w=torch.arange(1000.)))
    plain_save(good, target)
    good_bytes = open(target, 'rb').read()

    def dying_put(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(LocalBackend, 'put', dying_put)
    new = dict(state_dict=dict(w=torch.zeros(1000)))
    with pytest.raises(OSError):
        plain_save(new, target)  # stock MMEngine: truncated file
    assert len(open(target, 'rb').read()) < len(good_bytes)

    with open(target, 'wb') as f:
        f.write(good_bytes)
    atomic_checkpoint_saves()
    atomic_checkpoint_saves()  # idempotent
    with pytest.raises(OSError, match='No space left'):
        runner_module.save_checkpoint(new, target)
    assert open(target, 'rb').read() == good_bytes
    assert os.listdir(tmp_path) == ['epoch_2.pth']  # no temporary left
    monkeypatch.undo()
    runner_module.save_checkpoint(new, target)
    assert torch.equal(torch.load(target)['state_dict']['w'],
                       torch.zeros(1000))


# ------------------------------------------------------------ bf16 autocast
@pytest.mark.parametrize('kwargs', [
    dict(), dict(amr=dict(AMR, mode='sample')),
    dict(amr=dict(AMR, mode='batch')), dict(salience_source='attention')
], ids=['sbm', 'amr-sample', 'amr-batch', 'attention'])
def test_bf16_autocast_forward_backward_finite(build_mae, kwargs):
    model = build_mae(**kwargs)
    model.train()
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = model.loss(_images(4, seed=1) * 3, [None] * 4)['loss']
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
