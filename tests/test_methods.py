"""The contract every SBAM method keeps, over one table of methods.

For each row: the method's shipped config, shrunk to a tiny CPU version
(a 2-layer 32-d ViT on 28 px Fashion-MNIST, 16 images, batch 8), trains two
iterations through MMEngine's Runner; its masks follow MMPretrain's
convention (shape, dtype, exact count, 1 = masked) and hide more salient
tokens than they leave visible; its checkpoint loads into the stock class.
SBAMHook finds the masker (in MAE the backbone's, in iBoT the mask
generator's, in BootMAE the student backbone's and not its EMA copy's),
logs its statistics and draws. Every AMR mode the README's
method table claims is a variant row (``<row>-amr-<mode>``) whose ratios
follow AMR's formula and whose counts vary; every mode it says is not
supported is refused at build time. A new method adds a row, not a test
file.
"""
import copy
import glob
import os.path as osp
from typing import Dict, List, NamedTuple, Optional

import pytest
import torch
from mmengine.config import Config
from torch import Tensor

from conftest import ROOT
from mmsbam.compat import strip_collate_scope
from mmsbam.masking import (MaskingRecord, find_maskers,
                            masking_statistics)
from mmpretrain.registry import MODELS

TINY_ARCH = dict(
    embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64)
IMG, PATCH = 28, 4
NUM_TOKENS = (IMG // PATCH)**2  # 49
BATCH = 8

DATA_PREPROCESSOR = dict(
    type='SelfSupDataPreprocessor', mean=[72.94], std=[90.02], to_rgb=False)
#: Fashion-MNIST in place of ImageNet, two iterations, fp32 on the CPU,
#: SBAMHook logging and drawing every iteration.
TINY_RUN = dict(
    train_dataloader=dict(
        batch_size=BATCH, num_workers=0, persistent_workers=False,
        dataset=dict(
            _delete_=True, type='FashionMNIST', data_root='data/fashion_mnist',
            test_mode=False, indices=2 * BATCH)),
    train_cfg=dict(max_epochs=1),
    default_hooks=dict(logger=dict(interval=1),
                       checkpoint=dict(interval=1)),
    custom_hooks=[dict(type='SBAMHook', interval=1, vis_interval=1)],
    randomness=dict(seed=0))
SINGLE_VIEW = [dict(type='RandomResizedCrop', scale=IMG,
                    crop_ratio_range=(0.6, 1.0)),
               dict(type='PackInputs')]
MULTI_VIEW = [
    dict(type='MultiView', num_views=[2, 2], transforms=[
        [dict(type='RandomResizedCrop', scale=IMG,
              crop_ratio_range=(0.25, 1.0))],
        [dict(type='RandomResizedCrop', scale=12,
              crop_ratio_range=(0.05, 0.25))]]),
    dict(type='PackInputs')]


class AMR(NamedTuple):
    """AMR of a variant row: ``r_b = base_ratio - ratio_var + 2 ratio_var
    y_b`` (``y_b``: share of tokens with salience > ``delta``), one ratio
    per image (``mode='sample'``) or the batch mean (``'batch'``)."""
    base_ratio: float
    ratio_var: float
    delta: float
    mode: str = ''  # set per row by with_amr


class Method(NamedTuple):
    """One row: the shipped config, the stock class its checkpoint must
    load into (``extra_keys`` are the parameters the stock class lacks),
    how many images each masker masks per batch, the overrides that
    shrink the config to the tiny one, and the length of the masker's
    token grid (the mask grid where it is coarser than the patches).
    AMR rows (``amr`` set) are a base row with AMR switched on."""
    name: str
    config: str
    stock_type: str
    extra_keys: tuple
    masked_rows: int
    tiny: dict
    num_tokens: int = NUM_TOKENS
    sbam_args: tuple = ()  # SBAM-only arguments, dropped for the stock class
    amr: Optional[AMR] = None

    @property
    def base_name(self) -> str:
        """The row this one varies (its own name for a base row)."""
        return self.name.split('-amr-')[0]


METHODS = [
    Method(
        'mae', 'configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sbam.py',
        'MAEViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH, patch_cfg=dict(in_channels=1)),
            neck=dict(num_patches=NUM_TOKENS, patch_size=PATCH, in_chans=1,
                      embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4),
            head=dict(patch_size=PATCH, in_channels=1)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=SINGLE_VIEW)),
            optim_wrapper=dict(type='OptimWrapper', _delete_=True,
                               optimizer=dict(type='AdamW', lr=1e-3)))),
    Method(
        'ibot',
        'configs/ibot/ibot_vit-small-p16_16xb64-amp-coslr-800e_in1k_sbam.py',
        'VisionTransformer', ('mask_token', ), 2 * BATCH,  # 2 global crops
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH, in_channels=1, drop_path_rate=0),
            neck=dict(in_channels=32, hidden_channels=64,
                      bottleneck_channels=16, out_channels=64,
                      patch_out_channels=64),
            head=dict(out_channels=64, patch_out_channels=64,
                      num_local_crops=2)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=MULTI_VIEW)),
            optim_wrapper=dict(type='iBOTOptimWrapper',
                               _delete_=True,
                               optimizer=dict(type='AdamW', lr=1e-3),
                               clip_grad=dict(type='per_param', max_norm=3.),
                               freeze_last_layer_epochs=1,
                               paramwise_cfg=dict(custom_keys=dict(
                                   last_layer=dict(last_layer=True)))))),
    Method(  # the encoder adds no parameter: it loads into stock MAEViT
        'bootmae',
        'configs/bootmae/bootmae_vit-base-p16_8xb256-amp-coslr-800e_in1k_sbam.py',
        'MAEViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH, patch_cfg=dict(in_channels=1),
                          bootmae_mask_generator=dict(
                              num_block=30, num_masked=37, min_block=4,
                              max_block=15, max_roll=1)),
            neck=dict(num_patches=NUM_TOKENS, patch_size=PATCH, in_chans=1,
                      embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4),
            head=dict(patch_size=PATCH)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=SINGLE_VIEW)),
            optim_wrapper=dict(type='OptimWrapper', _delete_=True,
                               optimizer=dict(type='AdamW', lr=1e-3))),
        sbam_args=('feature_layers', 'bootmae_mask_generator')),
]

# Mask-token methods: the pipeline draws the method's own masks (here on the
# 7x7 patch grid of 28 px images) and the SBAM backbone replaces them. The
# target networks (DALL-E, VQ-KD) are the stock classes with small random
# weights and no checkpoint: no network access, and none is needed to check
# the masking contract.
TWO_NORM = dict(type='TwoNormDataPreprocessor', mean=[72.94], std=[90.02],
                second_mean=[-31.875], second_std=[318.75], to_rgb=False)
BEIT_MASKS = dict(type='BEiTMaskGenerator', input_size=7,
                  num_masking_patches=20, max_num_patches=None,
                  min_num_patches=4)


def two_pic_pipeline(second_size: int) -> list:
    return [dict(type='RandomResizedCropAndInterpolationWithTwoPic',
                 size=IMG, second_size=second_size, interpolation='bicubic',
                 second_interpolation='bicubic', scale=(0.5, 1.0)),
            BEIT_MASKS, dict(type='PackInputs')]


TINY_BEIT_BACKBONE = dict(arch=dict(_delete_=True, **TINY_ARCH),
                          img_size=IMG, patch_size=PATCH, in_channels=1,
                          drop_path_rate=0, init_cfg=None)
TINY_DALLE = dict(_delete_=True, type='DALL-E', n_hid=8, input_channels=1,
                  vocab_size=64)  # 8x downsampling: 56 px -> 7 x 7 tokens
ADAMW = dict(type='OptimWrapper', _delete_=True,
             optimizer=dict(type='AdamW', lr=1e-3))
SWIN_IMG = 32  # 8 x 8 patches of 4 px, SimMIM cells of 2 x 2 patches
# SimMIM's decoder and MaskFeat's HOG target are fixed to 3 channels: the
# grey images are repeated into RGB.
TO_RGB = [dict(type='NumpyToPIL', to_rgb=False),
          dict(type='torchvision/Grayscale', num_output_channels=3),
          dict(type='PILToNumpy', to_bgr=False)]
RGB_PREPROCESSOR = dict(type='SelfSupDataPreprocessor', mean=[72.94] * 3,
                        std=[90.02] * 3, to_rgb=False)

METHODS += [
    Method(
        'simmim',
        'configs/simmim/'
        'simmim_swin-base-w6_16xb128-amp-coslr-100e_in1k-192px_sbam.py',
        'SimMIMSwinTransformer', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, embed_dims=32,
                                    depths=[1, 1], num_heads=[2, 4]),
                          img_size=SWIN_IMG, out_indices=(1, ),
                          stage_cfgs=dict(block_cfgs=dict(window_size=4)),
                          mask_unit=2),
            neck=dict(in_channels=64, encoder_stride=8)),
            data_preprocessor=RGB_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=TO_RGB + [
                dict(type='RandomResizedCrop', scale=SWIN_IMG,
                     crop_ratio_range=(0.6, 1.0)),
                dict(type='SimMIMMaskGenerator', input_size=SWIN_IMG,
                     mask_patch_size=8, model_patch_size=4, mask_ratio=0.6),
                dict(type='PackInputs')])),
            optim_wrapper=ADAMW),
        num_tokens=(SWIN_IMG // 8)**2, sbam_args=('mask_unit', )),
    Method(
        'beit',
        'configs/beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py',
        'BEiTPretrainViT', (), BATCH,
        dict(model=dict(
            backbone=TINY_BEIT_BACKBONE,
            head=dict(embed_dims=32, num_embed=64),
            target_generator=TINY_DALLE),
            data_preprocessor=TWO_NORM,
            train_dataloader=dict(dataset=dict(pipeline=two_pic_pipeline(
                2 * IMG))),
            optim_wrapper=ADAMW)),
    Method(
        'beitv2',
        'configs/beitv2/'
        'beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py',
        'BEiTPretrainViT', (), BATCH,
        dict(model=dict(
            backbone=dict(TINY_BEIT_BACKBONE, out_indices=[-2, -1]),
            neck=dict(num_layers=1, early_layers=1,
                      backbone_arch=dict(_delete_=True, depth=2,
                                         **TINY_ARCH)),
            head=dict(embed_dims=32, num_embed=64),
            target_generator=dict(
                num_embed=64, embed_dims=8, init_cfg=None,
                encoder_config=dict(arch=dict(_delete_=True, **TINY_ARCH),
                                    img_size=IMG,
                                    patch_size=PATCH, in_channels=1))),
            data_preprocessor=TWO_NORM,
            train_dataloader=dict(dataset=dict(pipeline=two_pic_pipeline(
                IMG))),
            optim_wrapper=ADAMW)),
    Method(
        'cae',
        'configs/cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py',
        'CAEPretrainViT', (), BATCH,
        dict(model=dict(
            backbone=dict(TINY_BEIT_BACKBONE, arch=dict(_delete_=True,
                                                         **TINY_ARCH)),
            neck=dict(num_classes=64, embed_dims=32, num_heads=4,
                      regressor_depth=1, decoder_depth=1,
                      mask_tokens_num=BEIT_MASKS['num_masking_patches']),
            target_generator=TINY_DALLE),
            data_preprocessor=TWO_NORM,
            train_dataloader=dict(dataset=dict(pipeline=two_pic_pipeline(
                2 * IMG))),
            optim_wrapper=ADAMW)),
    Method(  # HOGGenerator assumes a 14 x 14 grid: 2 px patches
        'maskfeat',
        'configs/maskfeat/'
        'maskfeat_vit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py',
        'MaskFeatViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH),
                          img_size=IMG, patch_size=2),
            neck=dict(in_channels=32, out_channels=3 * 9),
            target_generator=dict(nbins=9, pool=2, gaussian_window=4)),
            data_preprocessor=RGB_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=TO_RGB + [
                dict(type='RandomResizedCrop', scale=IMG,
                     crop_ratio_range=(0.6, 1.0)),
                dict(type='BEiTMaskGenerator', input_size=14,
                     num_masking_patches=78, min_num_patches=15),
                dict(type='PackInputs')])),
            optim_wrapper=ADAMW),
        num_tokens=14 * 14),
]


#: Mask-token methods: the masker keeps the count of each pipeline mask.
KEEP_PIPELINE_COUNTS = ('simmim', 'beit', 'beitv2', 'cae', 'maskfeat',
                        'itpn_clip')


# Token-dropping (MAE-family) methods. The CLIP-target rows (MILAN, EVA,
# iTPN-CLIP) build the stock CLIPGenerator and CLIP classes from a tiny
# random checkpoint written locally (tests/tiny_clip.py): no network access.
# CLIP and MAEHiViT take RGB only, so those rows repeat the grey images into
# RGB. HiViT masks 16 px units: 64 px images give a 4 x 4 unit grid.
from tiny_clip import EMBED_DIM as CLIP_DIM, tiny_clip_checkpoint  # noqa: E402

HIVIT_IMG = 64
HIVIT_UNITS = (HIVIT_IMG // 16)**2  # 16
TINY_HIVIT = dict(_delete_=True, embed_dims=32, depths=[1, 1, 2], num_heads=4)


def one_view(size: int, rgb: bool = False) -> list:
    return (TO_RGB if rgb else []) + [
        dict(type='RandomResizedCrop', scale=size,
             crop_ratio_range=(0.6, 1.0)),
        dict(type='PackInputs')]


def tiny_clip_target(size: int, patch: int) -> dict:
    return dict(type='CLIPGenerator',
                tokenizer_path=tiny_clip_checkpoint(size, patch))


def tiny_itpn_neck(in_chans: int, target: str) -> dict:
    return dict(num_patches=HIVIT_UNITS, patch_size=16, in_chans=in_chans,
                embed_dim=32, fpn_dim=16, fpn_depth=1, decoder_embed_dim=32,
                decoder_depth=1, decoder_num_heads=4,
                reconstruction_type=target)


METHODS += [
    Method(
        'mff',
        'configs/mff/mff_vit-base-p16_8xb512-amp-coslr-300e_in1k_sbam.py',
        'MFFViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH, patch_cfg=dict(in_channels=1),
                          out_indices=[0, 1]),
            neck=dict(num_patches=NUM_TOKENS, patch_size=PATCH, in_chans=1,
                      embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4),
            head=dict(patch_size=PATCH, in_channels=1)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=one_view(IMG))),
            optim_wrapper=ADAMW)),
    Method(
        'mae_hivit',
        'configs/mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k_sbam.py',
        'MAEHiViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=TINY_HIVIT, img_size=HIVIT_IMG),
            neck=dict(num_patches=HIVIT_UNITS, embed_dim=32,
                      decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4)),
            data_preprocessor=RGB_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(
                pipeline=one_view(HIVIT_IMG, rgb=True))),
            optim_wrapper=ADAMW),
        num_tokens=HIVIT_UNITS),
    Method(
        'itpn_pixel',
        'configs/itpn/'
        'itpn-pixel_hivit-base-p16_8xb512-amp-coslr-400e_in1k_sbam.py',
        'iTPNHiViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=TINY_HIVIT, img_size=HIVIT_IMG, in_chans=1),
            neck=tiny_itpn_neck(1, 'pixel'),
            head=dict(in_channels=1)),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=one_view(HIVIT_IMG))),
            optim_wrapper=ADAMW),
        num_tokens=HIVIT_UNITS),
    Method(
        'itpn_clip',
        'configs/itpn/'
        'itpn-clip-b_hivit-base-p16_8xb256-amp-coslr-300e_in1k_sbam.py',
        'iTPNHiViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=TINY_HIVIT, img_size=HIVIT_IMG),
            neck=tiny_itpn_neck(3, 'clip'),
            head=dict(embed_dims=32, num_embed=CLIP_DIM),
            target_generator=tiny_clip_target(HIVIT_IMG, 16)),
            data_preprocessor=dict(mean=[72.94] * 3, std=[90.02] * 3,
                                   second_mean=[72.94] * 3,
                                   second_std=[90.02] * 3, to_rgb=False),
            train_dataloader=dict(dataset=dict(pipeline=TO_RGB + [
                dict(type='RandomResizedCropAndInterpolationWithTwoPic',
                     size=HIVIT_IMG, second_size=HIVIT_IMG,
                     interpolation='bicubic', second_interpolation='bicubic',
                     scale=(0.5, 1.0)),
                dict(type='BEiTMaskGenerator', input_size=4,
                     num_masking_patches=6, max_num_patches=None,
                     min_num_patches=2),
                dict(type='PackInputs')])),
            optim_wrapper=ADAMW),
        num_tokens=HIVIT_UNITS),
    Method(
        'milan',
        'configs/milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k_sbam.py',
        'MILANViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH),
            neck=dict(num_patches=NUM_TOKENS, patch_size=PATCH,
                      embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4, predict_feature_dim=CLIP_DIM),
            target_generator=tiny_clip_target(IMG, PATCH)),
            data_preprocessor=RGB_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(
                pipeline=one_view(IMG, rgb=True))),
            optim_wrapper=ADAMW)),
    Method(
        'eva',
        'configs/eva/'
        'eva-mae-style_vit-base-p16_16xb256-coslr-400e_in1k_sbam.py',
        'MAEViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH), img_size=IMG,
                          patch_size=PATCH),
            neck=dict(num_patches=NUM_TOKENS, patch_size=PATCH,
                      embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                      decoder_num_heads=4, predict_feature_dim=CLIP_DIM),
            target_generator=tiny_clip_target(IMG, PATCH)),
            data_preprocessor=RGB_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(
                pipeline=one_view(IMG, rgb=True))),
            optim_wrapper=ADAMW)),
]


# CMAE (provided by mmsbam): two views of a 40 px master crop, 32 px images
# (8 x 8 patches), masks on 4 x 4 cells of 2 x 2 patches; the masker ranks
# cells. The checkpoint's encoder is MAEViT's (mask_unit is CMAE's own).
CMAE_DECODER = dict(num_patches=64, patch_size=PATCH, in_chans=1,
                    embed_dim=32, decoder_embed_dim=32, decoder_depth=1,
                    decoder_num_heads=4)
METHODS += [
    Method(
        'cmae', 'configs/cmae/cmae_vit-base-p16_32xb128-coslr-1600e_in1k_sbam.py',
        'MAEViT', (), BATCH,
        dict(model=dict(
            backbone=dict(arch=dict(_delete_=True, **TINY_ARCH),
                          img_size=SWIN_IMG, patch_size=PATCH,
                          patch_cfg=dict(in_channels=1)),
            neck=CMAE_DECODER,
            head=dict(patch_size=PATCH, in_channels=1),
            feature_decoder=dict(CMAE_DECODER, predict_feature_dim=32),
            projector=dict(in_channels=32, hid_channels=64, out_channels=16),
            contrastive_head=dict(predictor=dict(
                in_channels=16, hid_channels=64, out_channels=16))),
            data_preprocessor=DATA_PREPROCESSOR,
            train_dataloader=dict(dataset=dict(pipeline=[
                dict(type='RandomResizedCrop', scale=40,
                     crop_ratio_range=(0.2, 1.0)),
                dict(type='MultiView', num_views=[1, 1], transforms=[
                    [dict(type='ShiftPixel', pixel=0, size=SWIN_IMG)],
                    [dict(type='ShiftPixel', pixel=7, size=SWIN_IMG)]]),
                dict(type='PackInputs')])),
            optim_wrapper=ADAMW),
        num_tokens=(SWIN_IMG // PATCH // 2)**2, sbam_args=('mask_unit', )),
]


# AMR rows: every mode the README's method table claims for a method (its
# "AMR" column), as a variant of the method's row; the modes the table says
# are not supported are in UNSUPPORTED_AMR and refused at build time.
# Where a method keeps its pipeline's masks (KEEP_PIPELINE_COUNTS), AMR
# moves each pipeline ratio by r_b - base_ratio, base_ratio being the
# method's nominal ratio; elsewhere base_ratio is the backbone's mask_ratio
# (0.75 in every stock config here). 'batch' rows train on batches of
# AMR_BATCH, whose mean salience differs more between the two batches than
# that of 8. ratio_var and delta were searched on these images and seeds so
# that counts differ between the images of a batch ('sample') and between
# the two batches ('batch': by >= 2 tokens where L >= 49, by 1 on the 16
# units of HiViT and SimMIM's cells, each ratio about half a token from a
# rounding step); test_amr_ratios_and_counts asserts that they do.
BY_NAME = {m.name: m for m in METHODS}
AMR_BATCH = 4
AMR_SETTINGS = {  # base_ratio, ratio_var, delta
    'mae': AMR(0.75, 0.22, 0.18),
    'ibot': AMR(0.3, 0.21, 0.34),
    'mae_hivit': AMR(0.75, 0.22, 0.1),
    'mff': AMR(0.75, 0.23, 0.16),
    'eva': AMR(0.75, 0.18, 0.04),
    'itpn_pixel': AMR(0.75, 0.23, 0.9),
    'itpn_clip': AMR(0.75, 0.17, 0.42),
    'milan': AMR(0.75, 0.14, 0.06),
    'simmim': AMR(0.6, 0.33, 0.6),
    'beit': AMR(0.4, 0.33, 0.24),
    'beitv2': AMR(0.4, 0.33, 0.24),
    'cae': AMR(0.4, 0.38, 0.12),
    'maskfeat': AMR(0.4, 0.2, 0.42),
    'cmae': AMR(0.65, 0.2, 0.3),
    'bootmae': AMR(0.75, 0.22, 0.18),
}
#: (row, mode) the README's table says the method cannot take.
UNSUPPORTED_AMR = [('mae_hivit', 'sample'), ('milan', 'sample'),
                   ('cae', 'sample'), ('cmae', 'sample'),
                   ('bootmae', 'sample')]


def amr_overrides(method: Method) -> dict:
    """Config overrides that switch AMR on where the method takes it (and
    the smaller batches of 'batch' rows)."""
    a = method.amr
    amr = dict(ratio_var=a.ratio_var, delta=a.delta, mode=a.mode)
    if method.base_name == 'ibot':
        model = dict(mask_generator=dict(
            amr=dict(amr, base_ratio=a.base_ratio)))
    elif method.base_name in KEEP_PIPELINE_COUNTS and \
            method.base_name != 'itpn_clip':  # mask-token backbones
        model = dict(backbone=dict(
            masker=dict(mask_ratio=a.base_ratio, amr=amr)))
    else:
        model = dict(backbone=dict(amr=amr))
    if a.mode == 'sample':
        return dict(model=model)
    return dict(model=model, train_dataloader=dict(
        batch_size=AMR_BATCH, dataset=dict(indices=2 * AMR_BATCH)))


def with_amr(name: str, mode: str) -> Method:
    """Row ``name`` with AMR in ``mode``, named ``<name>-amr-<mode>``."""
    base = BY_NAME[name]
    row = base._replace(name=f'{name}-amr-{mode}',
                        amr=AMR_SETTINGS[name]._replace(mode=mode))
    if mode == 'batch':
        row = row._replace(
            masked_rows=base.masked_rows * AMR_BATCH // BATCH)
    backbone_keys = amr_overrides(row)['model'].get('backbone', {})
    return row._replace(sbam_args=base.sbam_args + tuple(backbone_keys))


METHODS += [
    with_amr(name, mode) for name in AMR_SETTINGS
    for mode in ('sample', 'batch') if (name, mode) not in UNSUPPORTED_AMR
]


def tiny_config(method: Method, work_dir: str) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, method.config))
    # deep copies: merging pops the `_delete_` keys
    cfg.merge_from_dict(copy.deepcopy(dict(TINY_RUN, work_dir=work_dir)))
    cfg.merge_from_dict(copy.deepcopy(method.tiny))
    if method.amr is not None:
        cfg.merge_from_dict(amr_overrides(method))
    strip_collate_scope(cfg)
    return cfg


#: Every masking of each trained row, in order (two iterations x maskers):
#: the masker keeps only the last one.
MASKINGS: Dict[str, List[MaskingRecord]] = {}


@pytest.fixture(scope='module', params=METHODS, ids=lambda m: m.name)
def trained(request, tmp_path_factory, monkeypatch_module, fashion_mnist):
    """``(method, runner)`` after two training iterations."""
    from mmengine.runner import Runner
    method = request.param
    monkeypatch_module.chdir(ROOT)  # the config's relative data_root
    work_dir = str(tmp_path_factory.mktemp(method.name))
    runner = Runner.from_cfg(tiny_config(method, work_dir))
    records = MASKINGS[method.name] = []
    for masker in find_maskers(runner.model).values():
        masker.register_forward_hook(
            lambda module, args, out: records.append(module.last_masking))
    runner.train()
    return method, runner


@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_trains_two_iterations(trained):
    _, runner = trained
    assert runner.iter == 2
    assert osp.isfile(osp.join(runner.work_dir, 'epoch_1.pth'))


def test_sbam_hook_logs_and_draws(trained):
    """SBAMHook finds the masker wherever the method keeps it."""
    _, runner = trained
    hub = runner.message_hub
    stats = hub.get_scalar('train/sbam/ratio_mean').current()
    assert 0 < stats < 1
    assert hub.get_scalar('train/sbam/enabled').current() == 1.0
    pictures = glob.glob(osp.join(runner.log_dir, 'vis_data', 'vis_image',
                                  'sbam_masks_*.png'))
    assert len(pictures) == 2


def test_mask_conventions(trained):
    """(B, L) float, 0/1; exactly L - int(L (1 - r_b)) masked per image
    where the masker draws the count from a ratio, the method's own count
    (ratio recorded as count / L) where it is given one."""
    method, runner = trained
    maskers = find_maskers(runner.model).values()
    assert maskers
    for masker in maskers:
        record = masker.last_masking
        mask = record.mask
        L = method.num_tokens
        assert mask.shape == (method.masked_rows, L)
        assert mask.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        visible = record.masking.num_visible
        assert torch.equal(mask.sum(1).long(), L - visible)
        if method.name in KEEP_PIPELINE_COUNTS:  # (AMR rows: from ratios)
            assert torch.equal(mask.mean(1), record.ratio)
        else:  # count = L - int(L (1 - r_b))
            expected = torch.floor(L * (1 - record.ratio.double())).long()
            assert torch.equal(visible, expected)


def test_masked_tokens_are_more_salient(trained):
    _, runner = trained
    for masker in find_maskers(runner.model).values():
        record = masker.last_masking
        stats = masking_statistics(record.salience, record.mask)
        assert stats['salience_masked'] > stats['salience_visible']


def test_checkpoint_loads_into_the_stock_class(trained):
    method, runner = trained
    cfg = runner.cfg.model.backbone.to_dict()
    cfg['type'] = method.stock_type
    for key in method.sbam_args:
        del cfg[key]
    stock = MODELS.build(cfg)
    assert type(stock).__name__ == method.stock_type
    state = torch.load(osp.join(runner.work_dir, 'epoch_1.pth'),
                       map_location='cpu')['state_dict']
    backbone = {k[len('backbone.'):]: v for k, v in state.items()
                if k.startswith('backbone.')}
    for key in method.extra_keys:
        del backbone[key]
    stock.load_state_dict(backbone, strict=True)
    trained_bb = runner.model.backbone.state_dict()
    assert all(torch.equal(trained_bb[k], v)
               for k, v in stock.state_dict().items())


def amr_reference(salience: Tensor, amr: AMR) -> Tensor:
    """``r_b`` in float64, written from SBAM.md section 3."""
    y = (salience.double() > amr.delta).double().mean(1)
    r = amr.base_ratio - amr.ratio_var + 2 * amr.ratio_var * y
    return r.mean().expand_as(r) if amr.mode == 'batch' else r


def test_amr_ratios_and_counts(trained):
    """AMR rows, both iterations: each image's ratio is AMR's ``r_b`` of
    its salience (the batch mean in mode 'batch'), or, where the method
    keeps its pipeline's masks, the pipeline ratio (a whole count) moved
    by ``r_b - base_ratio`` (iBoT: ``r_b`` for the images it masks, 0 for
    the others); the masked counts differ between the images of a batch
    ('sample'), or are one count per batch that differs between the two
    batches ('batch')."""
    method, _ = trained
    if method.amr is None:
        pytest.skip('not an AMR row')
    amr, L = method.amr, method.num_tokens
    records = MASKINGS[method.name]
    assert len(records) == 2  # one masker, two iterations
    batch_counts = []
    for record in records:
        ratio = record.ratio.double()
        r_b = amr_reference(record.salience, amr)
        masked = ratio > 0
        if method.base_name == 'ibot':  # iBoT masks some images only
            assert masked.any() and torch.allclose(ratio[masked],
                                                   r_b[masked], atol=1e-6)
            assert record.mask[~masked].sum() == 0
        elif method.base_name in KEEP_PIPELINE_COUNTS:
            pipeline = (ratio - (r_b - amr.base_ratio)) * L
            assert torch.allclose(pipeline, pipeline.round(), atol=1e-4)
            assert ((0 < pipeline.round()) & (pipeline.round() < L)).all()
        else:
            assert torch.allclose(ratio, r_b, atol=1e-6)
        counts = record.mask.sum(1).long()[masked]
        if amr.mode == 'sample':
            assert counts.unique().numel() > 1, counts
        else:
            assert counts.unique().numel() == 1, counts
            batch_counts.append(int(counts[0]))
    if amr.mode == 'batch':
        assert batch_counts[0] != batch_counts[1], batch_counts


@pytest.mark.parametrize('name,mode', UNSUPPORTED_AMR,
                         ids=[f'{n}-{m}' for n, m in UNSUPPORTED_AMR])
def test_unsupported_amr_mode_is_refused_at_build_time(name, mode, tmp_path,
                                                       monkeypatch):
    """What the README's table says a method cannot take is refused when
    the model is built, with the mode that works in the message."""
    monkeypatch.chdir(ROOT)
    cfg = tiny_config(with_amr(name, mode), str(tmp_path))
    with pytest.raises(ValueError, match="mode='batch'"):
        MODELS.build(cfg.model)


#: README method-table rows (by their first words) -> contract rows.
README_ROWS = {
    'MAE |': ['mae'], 'iBoT': ['ibot'], 'MAE with HiViT': ['mae_hivit'],
    'MFF': ['mff'], 'EVA': ['eva'], 'iTPN': ['itpn_pixel', 'itpn_clip'],
    'MILAN': ['milan'], 'SimMIM': ['simmim'], 'BEiT v1, v2': ['beit',
                                                            'beitv2'],
    'CAE': ['cae'], 'MaskFeat': ['maskfeat'], 'CMAE': ['cmae'],
    'BootMAE': ['bootmae'],
}
README_MODES = {'per image': 'sample', 'per batch': 'batch'}


def readme_amr_claims() -> Dict[str, tuple]:
    """``{contract row: (claimed modes, refused modes)}`` from the AMR
    column of the README's method table: modes named before the first
    ';' are claimed, modes named in a clause saying "not supported" or
    "refused" are refused."""
    with open(osp.join(ROOT, 'README.md')) as f:
        lines = [ln for ln in f if ln.startswith('| ')]
    header = next(ln for ln in lines if ln.startswith('| method |'))
    column = [c.strip() for c in header.split('|')].index('AMR')
    claims = {}
    for line in lines:
        for prefix, names in README_ROWS.items():
            if (line[2:] + ' |').startswith(prefix):
                cell = line.split('|')[column]
                clauses = cell.split(';')
                claimed = {m for k, m in README_MODES.items()
                           if k in clauses[0]}
                refused = {m for k, m in README_MODES.items()
                           for c in clauses[1:] if k in c and (
                               'not supported' in c or 'refused' in c)}
                for name in names:
                    claims[name] = (claimed, refused)
    return claims


def test_readme_amr_claims_are_the_tested_modes():
    """Every mode the README claims has an AMR row here; every mode it
    says is unsupported is a refusal case; nothing else is tested."""
    claims = readme_amr_claims()
    assert set(claims) == set(AMR_SETTINGS)
    rows = {(m.base_name, m.amr.mode) for m in METHODS if m.amr is not None}
    for name, (claimed, refused) in claims.items():
        assert claimed, f'{name}: the README claims no AMR mode'
        assert {mode for n, mode in rows if n == name} == claimed, name
        assert {mode for n, mode in UNSUPPORTED_AMR if n == name} == \
            refused, name
        assert claimed | refused == {'sample', 'batch'}, name
