# iBoT on Fashion-MNIST, on CPU: the ViT-S recipe of
# configs/ibot/ibot_vit-small-p16_16xb64-amp-coslr-800e_in1k.py in small.
# Overrides: a 4-layer 64-d ViT on 28x28 grayscale images with 4x4 patches
# (7x7 = 49 global tokens; local crops of 12 px = 3x3 tokens), 2 local
# crops, a head with 256 prototypes, batch 128 (469 iterations per epoch),
# 5 epochs, schedules scaled to epochs (1 warm-up epoch for the LR and the
# teacher temperature; the last layer is not frozen: 1 of 800 epochs in the
# recipe), plain fp32 optimizer wrapper, no colour jitter on grey images,
# blur radius U(0.1, 0.5) for 28 px. Blockwise masks as iBoT; the SBAM
# twins change only the mask generator.
_base_ = '../ibot/ibot_vit-small-p16_16xb64-amp-coslr-800e_in1k.py'

num_local_crops = 2
blur = dict(type='GaussianBlur', magnitude_range=(0.1, 0.5),
            magnitude_std='inf')
global_crop = dict(type='RandomResizedCrop', scale=28,
                   crop_ratio_range=(0.25, 1.0), interpolation='bicubic',
                   backend='pillow')
flip = dict(type='RandomFlip', prob=0.5)
train_pipeline = [
    dict(type='MultiView', num_views=[1, 1, num_local_crops], transforms=[
        [global_crop, flip, dict(blur, prob=1.0)],
        [global_crop, flip, dict(blur, prob=0.1),
         dict(type='Solarize', thr=128, prob=0.2)],
        [dict(type='RandomResizedCrop', scale=12,
              crop_ratio_range=(0.05, 0.25), interpolation='bicubic',
              backend='pillow'), flip, dict(blur, prob=0.5)],
    ]),
    dict(type='PackInputs')
]
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[72.94], std=[90.02], to_rgb=False)
train_dataloader = dict(
    batch_size=128, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='FashionMNIST',
                 data_root='data/fashion_mnist', test_mode=False,
                 pipeline=train_pipeline))

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=4,
                  feedforward_channels=256),
        img_size=28, patch_size=4, in_channels=1, drop_path_rate=0.0),
    neck=dict(in_channels=64, hidden_channels=256, bottleneck_channels=64,
              out_channels=256, patch_out_channels=256,
              norm_last_layer=True),
    head=dict(out_channels=256, patch_out_channels=256,
              num_local_crops=num_local_crops))

max_epochs = 5
optim_wrapper = dict(
    type='iBOTOptimWrapper', _delete_=True,
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.04),
    clip_grad=dict(type='per_param', max_norm=3.0),
    freeze_last_layer_epochs=0,
    paramwise_cfg=dict(
        flat_decay_mult=0., bias_decay_mult=0., norm_decay_mult=0.,
        custom_keys={'last_layer': dict(last_layer=True)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingWeightDecay', eta_min=0.4, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [
    dict(type='iBOTTeacherTempHook', warmup_teacher_temp=0.04,
         teacher_temp=0.07, warmup_teacher_patch_temp=0.04,
         teacher_patch_temp=0.07, warmup_epochs=1),
    dict(type='RandomStateHook'),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=128)
