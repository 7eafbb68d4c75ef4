# iBoT ViT-S/16 on ImageNet-1K, the official README recipe (shared/IBOT.md
# §1.7): 800 epochs, 16 GPUs x 64 images, 2 global (224 px, scale 0.25-1)
# + 10 local crops (96 px, scale 0.05-0.25), blockwise masks on half the
# images at ratio U(0.1, 0.5), shared head with 8192 prototypes
# (norm_last_layer=False), teacher momentum 0.996 -> 1, teacher temperature
# 0.04 -> 0.07 over 30 epochs, AdamW lr 5e-4 x batch/256 with 10 warm-up
# epochs, weight decay 0.04 -> 0.4, per-parameter gradient clip 3.0, last
# layer frozen in the first epoch, fp16. The SBAM twin changes one line:
# ibot_vit-small-p16_16xb64-amp-coslr-800e_in1k_sbam.py.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32_byol.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

num_local_crops = 10
# iBoT's augmentations (shared/IBOT.md §1.5) in MMPretrain's transforms
flip_and_color = [
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply', prob=0.8, transforms=[
        dict(type='ColorJitter', brightness=0.4, contrast=0.4,
             saturation=0.2, hue=0.1)]),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
         channel_weights=(0.114, 0.587, 0.2989)),
]
global_crop = dict(type='RandomResizedCrop', scale=224,
                   crop_ratio_range=(0.25, 1.0), interpolation='bicubic',
                   backend='pillow')
global_pipeline1 = [
    global_crop, *flip_and_color,
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=1.0),
]
global_pipeline2 = [
    global_crop, *flip_and_color,
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
]
local_pipeline = [
    dict(type='RandomResizedCrop', scale=96, crop_ratio_range=(0.05, 0.25),
         interpolation='bicubic', backend='pillow'),
    *flip_and_color,
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0),
         magnitude_std='inf', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1, num_local_crops],
         transforms=[global_pipeline1, global_pipeline2, local_pipeline]),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=64, num_workers=8,
    collate_fn=dict(_delete_=True, type='default_collate'),  # stack fix
    dataset=dict(pipeline=train_pipeline))

model = dict(
    type='iBOT',
    backbone=dict(type='iBOTViT', arch='deit-small', patch_size=16,
                  img_size=224, drop_path_rate=0.1),
    neck=dict(type='iBOTNeck', in_channels=384, hidden_channels=2048,
              bottleneck_channels=256, out_channels=8192,
              patch_out_channels=8192, shared_last_layer=True,
              norm_last_layer=False),
    head=dict(type='iBOTHead', out_channels=8192, patch_out_channels=8192,
              num_global_crops=2, num_local_crops=num_local_crops,
              student_temp=0.1, center_momentum=0.9,
              patch_center_momentum=0.9),
    mask_generator=dict(type='iBOTBlockMaskGenerator',
                        pred_ratio=(0.0, 0.3), pred_ratio_var=(0.0, 0.2)),
    teacher_momentum=0.996)

max_epochs = 800
optim_wrapper = dict(
    type='AmpiBOTOptimWrapper', loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=5e-4 * 1024 / 256, weight_decay=0.04),
    clip_grad=dict(type='per_param', max_norm=3.0),
    freeze_last_layer_epochs=1,
    # iBoT decays every parameter with ndim > 1 that is not a bias
    # (pos_embed, cls_token and mask_token too)
    paramwise_cfg=dict(
        flat_decay_mult=0., bias_decay_mult=0., norm_decay_mult=0.,
        custom_keys={'last_layer': dict(last_layer=True)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0,
         end=10, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=10,
         end=max_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingWeightDecay', eta_min=0.4, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
custom_hooks = [
    dict(type='iBOTTeacherTempHook', warmup_teacher_temp=0.04,
         teacher_temp=0.07, warmup_teacher_patch_temp=0.04,
         teacher_patch_temp=0.07, warmup_epochs=30),
    dict(type='RandomStateHook'),
]
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=1024)
