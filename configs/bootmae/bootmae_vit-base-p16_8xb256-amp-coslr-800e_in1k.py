# BootMAE ViT-B/16 on ImageNet-1K, the official recipe (LightDXY/BootMAE
# d604b18, scripts/pretrain/bash_pre_BootMAE_Base_800.sh + argparse
# defaults; shared/BOOTMAE_CMAE.md §1.5): 801 epochs (fine-tuning loads
# checkpoint 799), global batch 2048 (8 GPUs x 256; the README says 16 x
# 128, the same 2048), inputs normalised with mean = std = 0.5, masks of
# 147/196 cells (120 block + 27 random, per-batch roll 0..3), pixel decoder
# 2 x 512-d and feature decoder 2 x 768-d with feature injection from
# blocks 0 and 11, weighted masks, lambda_f ramped over 25 % of the epochs,
# EMA decay 0.999 -> 0.9999 (100 epochs) -> 0.99999 (300 more), AdamW
# lr 1.5e-4 x 2048 / 256 with (0.9, 0.95), wd 0.05, 40 warm-up epochs,
# cosine to an absolute 1e-4, fp16, no clipping. The SBAM twin changes
# one line: bootmae_vit-base-p16_8xb256-amp-coslr-800e_in1k_sbam.py.
#
# NOT VERIFIED against the official sources (what the port decides):
#   - LR warm-up: the official one starts at exactly 0; MMEngine's LinearLR
#     needs a factor > 0 (1e-9 here).
#   - EMA timing: updated at the start of the next iteration (MMPretrain's
#     BYOL convention), so the first iteration of an epoch already uses the
#     new epoch's decay; the official EMA also averages the decoders.
#   - Masks: the same distribution as the official, other random streams
#     (blocks and roll from Python's random, the ordering noise from
#     torch's CPU generator; docs/bootmae.md).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

# official datasets.py: Normalize(mean=0.5, std=0.5) (IMAGENET_INCEPTION_*);
# the pixel target's epsilon 1e-5 acts on this [-1, 1] scale
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5], to_rgb=True)
train_dataloader = dict(
    batch_size=256,
    collate_fn=dict(_delete_=True, type='default_collate'))  # stack fix

max_epochs = 801
model = dict(
    type='BootMAE',
    backbone=dict(
        type='BootMAEViT', arch='b', patch_size=16, mask_ratio=0.75,
        feature_layers=(0, -1),  # official fea_list [0, 11]
        bootmae_mask_generator=dict(
            type='BootMAEMaskGenerator', num_block=120, num_masked=147,
            min_block=16, max_block=60, max_roll=3)),
    neck=dict(
        type='BootMAENeck', num_patches=196, patch_size=16, in_chans=3,
        embed_dim=768, decoder_embed_dim=512, decoder_depth=2,
        decoder_num_heads=12),
    head=dict(type='BootMAEHead', patch_size=16, weight_mask=True,
              pixel_eps=1e-5, feature_eps=1e-6),
    ema_decays=(0.999, 0.9999, 0.99999),
    ema_epochs=(100, 300),
    ema_dynamic=True,
    feature_weight=1.0,
    feature_ramp_epochs=max_epochs / 4)

optim_wrapper = dict(
    type='AmpOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 2048 / 256, betas=(0.9, 0.95),
                   weight_decay=0.05),
    # official optim_factory: no decay for 1-D parameters, biases,
    # pos_embed and cls_token; both mask tokens are decayed
    paramwise_cfg=dict(
        flat_decay_mult=0., bias_decay_mult=0., norm_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.),
                     'cls_token': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0,
         end=40, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-4, by_epoch=True, begin=40,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
custom_hooks = [dict(type='RandomStateHook')]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=2048)
