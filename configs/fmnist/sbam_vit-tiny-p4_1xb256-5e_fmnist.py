# SBAM pre-training of a tiny ViT on Fashion-MNIST, on CPU: the demo job.
#
# Derived from MMPretrain's own MAE config, so everything not overridden
# here (head loss, norm_pix, AdamW betas, weight decay rules, LR schedule
# shape, hooks) is stock MAE. Overrides: a 4-layer 64-d ViT on 28x28
# grayscale images with 4x4 patches (49 tokens), the Fashion-MNIST dataset,
# plain ``OptimWrapper`` (``AmpOptimWrapper`` refuses CPUs) and 5 epochs.
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

# `_delete_` because the base gives arch as the string 'b'
arch = dict(
    _delete_=True,
    embed_dims=64,
    num_layers=4,
    num_heads=4,
    feedforward_channels=256)
model = dict(
    backbone=dict(
        type='SBAMViT',  # the one-line switch; 'MAEViT' is stock MAE
        arch=arch,
        img_size=28,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        mask_ratio=0.75),
    neck=dict(
        num_patches=49,
        patch_size=4,
        in_chans=1,
        embed_dim=64,
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=4),
    head=dict(patch_size=4, in_channels=1))

data_root = 'data/fashion_mnist'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[72.94], std=[90.02], to_rgb=False)
train_pipeline = [
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    # the base's ``_scope_`` key would reach default_collate() as a kwarg
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='FashionMNIST',
        data_root=data_root,
        test_mode=False,
        download=False,
        pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1.5e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))
max_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, diff_rank_seed=True)
# random states (torch, numpy, Python; every rank) in the checkpoints, so that
# --resume draws the same masks as an uninterrupted run (mmsbam.engine.hooks.random_state_hook)
custom_hooks = [dict(type='RandomStateHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
resume = False
auto_scale_lr = dict(base_batch_size=256)
