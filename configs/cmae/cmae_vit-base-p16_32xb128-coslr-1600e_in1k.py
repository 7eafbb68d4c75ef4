# CMAE ViT-B/16 on ImageNet-1K, the official 1600-epoch config
# (ZhichengHuang/CMAE e786a52, configs/pre-training/cmae/
# cmae_vit-base-p16_32xb128-coslr-1600e_in1k.py; shared/BOOTMAE_CMAE.md
# §2.4): 32 GPUs x 128 images; a 256-px master crop (scale 0.2-1, bicubic)
# + flip; online view = its top-left 224 px, target view = 224 px shifted
# by up to 31 px + colour jitter, grey, blur; 2x2-cell masks at 0.65
# (17 of 49 cells visible); pixel decoder 8 x 512, feature decoder
# 2 x 512 (output p^2*3 = 768); projector 768-1536-256, predictor
# 256-1536-256 (SyncBN eps 1e-6, no last BN); InfoNCE tau 0.07 scaled by
# 2 tau; target momentum 0.996 constant; AdamW 2.4e-3 (0.9, 0.95),
# wd 0.05, 40 warm-up epochs, cosine to 0; AMP.
# NOT VERIFIED against the paper (only the code was readable):
#   - the 2x2-cell masking at 0.65 exists only in the mmengine rewrite
#     (its MAE baseline masks per patch at 0.75);
#   - the constant momentum 0.996 (the code's cosine 0.996 -> 0.996 is a
#     no-op; the paper's schedule could not be checked);
#   - seed 60 (from the config).
# The SBAM twin changes one line: ..._sbam.py.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs512_mae.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
target_view = [
    dict(type='ShiftPixel', pixel=31, size=224),
    dict(type='RandomApply', prob=0.8, transforms=[
        dict(type='ColorJitter', brightness=0.4, contrast=0.4,
             saturation=0.4, hue=0.1)]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=256, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiView', num_views=[1, 1], transforms=[
        [dict(type='ShiftPixel', pixel=0, size=224)], target_view]),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=128, num_workers=8,
    collate_fn=dict(_delete_=True, type='default_collate'),  # stack fix
    dataset=dict(pipeline=train_pipeline))

temperature = 0.07
mlp = dict(type='NonLinearNeck', num_layers=2, with_bias=True,
           with_last_bn=False, with_avg_pool=False,
           norm_cfg=dict(type='SyncBN', eps=1e-6))
decoder = dict(type='MAEPretrainDecoder', num_patches=196, patch_size=16,
               in_chans=3, embed_dim=768, decoder_embed_dim=512,
               decoder_num_heads=16, mlp_ratio=4.)
model = dict(
    type='CMAE',
    backbone=dict(type='CMAEViT', arch='b', patch_size=16, mask_ratio=0.65,
                  mask_unit=2),
    neck=dict(decoder, decoder_depth=8),
    head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=16,
              loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    feature_decoder=dict(decoder, decoder_depth=2),
    # reads the feature decoder's p^2*3 = 768 outputs and the target's
    # 768-d tokens
    projector=dict(mlp, in_channels=768, hid_channels=1536,
                   out_channels=256),
    contrastive_head=dict(
        type='MoCoV3Head',
        predictor=dict(mlp, in_channels=256, hid_channels=1536,
                       out_channels=256),
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature),
    base_momentum=0.996,
    end_momentum=0.996,
    rc_weight=1.0,
    ct_weight=1.0)

max_epochs = 1600
warmup_epochs = 40
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95),
                   weight_decay=0.05),
    # the official custom_keys: no decay where a name contains these
    paramwise_cfg=dict(custom_keys={
        'ln': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.),
        'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=0., by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
# random states in the checkpoints: --resume draws the same masks and views
custom_hooks = [dict(type='RandomStateHook')]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
randomness = dict(seed=60, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=4096)
