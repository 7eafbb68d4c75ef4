# CMAE on Fashion-MNIST, on CPU: the ViT-B/16 recipe of
# configs/cmae/cmae_vit-base-p16_32xb128-coslr-1600e_in1k.py in small
# (shared/BOOTMAE_CMAE.md §6). Overrides: a 4-layer 64-d ViT on 32 px grey
# images with 4 px patches (8 x 8 patches, 4 x 4 cells of 2 x 2 patches;
# 5 of 16 cells = 20 patches visible); a 40-px master crop (32 + 2 patches,
# as 256 = 224 + 2 x 16), online view its top-left 32 px, target view
# shifted by up to 7 px (= 2 x 4 - 1, as 31 = 2 x 16 - 1); blur radius
# U(0.1, 0.5); no colour jitter or greyscale (mmcv's ColorJitter needs 3
# channels); decoders 2 x 64-d, 4 heads; the feature decoder outputs 64
# channels (predict_feature_dim), not p^2*C = 16: one projector and its EMA
# copy read it and the 64-d target tokens (in ViT-B/16, p^2*3 = 768 is the
# embedding width); projector 64-128-32, predictor 32-128-32; batch 256, 5 epochs,
# AdamW 1.5e-3, 1 warm-up epoch, cosine to 0; fp32 OptimWrapper.
# Unchanged: tau 0.07 and 2 tau weight, momentum 0.996, mask ratio 0.65 on
# 2 x 2 cells, loss weights 1, the no-decay keys.
_base_ = '../cmae/cmae_vit-base-p16_32xb128-coslr-1600e_in1k.py'

train_pipeline = [
    dict(type='RandomResizedCrop', scale=40, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='MultiView', num_views=[1, 1], transforms=[
        [dict(type='ShiftPixel', pixel=0, size=32)],
        [dict(type='ShiftPixel', pixel=7, size=32),
         dict(type='GaussianBlur', magnitude_range=(0.1, 0.5),
              magnitude_std='inf', prob=0.5)]]),
    dict(type='PackInputs')
]
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[72.94], std=[90.02], to_rgb=False)
train_dataloader = dict(
    batch_size=256, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='FashionMNIST',
                 data_root='data/fashion_mnist', test_mode=False,
                 download=False, pipeline=train_pipeline))

decoder = dict(num_patches=64, patch_size=4, in_chans=1, embed_dim=64,
               decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=4,
                  feedforward_channels=256),
        img_size=32, patch_size=4, patch_cfg=dict(in_channels=1)),
    neck=decoder,
    head=dict(patch_size=4, in_channels=1),
    feature_decoder=dict(decoder, predict_feature_dim=64),
    projector=dict(in_channels=64, hid_channels=128, out_channels=32),
    contrastive_head=dict(predictor=dict(in_channels=32, hid_channels=128,
                                         out_channels=32)))

max_epochs = 5
optim_wrapper = dict(
    type='OptimWrapper', _delete_=True,
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.95),
                   weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'ln': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.),
        'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0.,
         by_epoch=True, begin=1, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, diff_rank_seed=True)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=256)
