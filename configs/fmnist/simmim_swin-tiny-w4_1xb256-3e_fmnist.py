# SimMIM pre-training of a tiny Swin on Fashion-MNIST, on CPU: random masks,
# the baseline of docs/results_simmim.md (its SBAM twin changes the backbone
# type only).
#
# Derived from MMPretrain's SimMIM config, so everything not overridden here
# (L1 loss on masked pixels, linear decoder, AdamW betas, weight-decay rules,
# LR schedule shape) is stock SimMIM. Overrides: a 2-stage 48-d Swin with
# window 4 on 32 px images (8 x 8 patches of 4 px), the grey images repeated
# into RGB (SimMIM's decoder predicts 3 channels), SimMIM's mask cells of
# 8 px (2 x 2 patches, 16 cells per image) at ratio 0.6, plain
# ``OptimWrapper`` (``AmpOptimWrapper`` refuses CPUs) and 3 epochs.
_base_ = ('mmpretrain::simmim/'
          'simmim_swin-base-w6_8xb256-amp-coslr-100e_in1k-192px.py')
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

img_size = 32
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=48, depths=[2, 2],
                  num_heads=[3, 6]),
        img_size=img_size,
        out_indices=(1, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=4))),
    neck=dict(in_channels=96, encoder_stride=8))

data_root = 'data/fashion_mnist'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor', mean=[72.94] * 3, std=[90.02] * 3,
    to_rgb=False)
to_rgb = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False)
]
train_pipeline = to_rgb + [
    dict(type='RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.67, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='SimMIMMaskGenerator', input_size=img_size, mask_patch_size=8,
         model_patch_size=4, mask_ratio=0.6),
    dict(type='PackInputs')
]
fmnist = dict(type='FashionMNIST', data_root=data_root, download=False)
train_dataloader = dict(
    batch_size=256, num_workers=0, persistent_workers=False,
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(fmnist, _delete_=True, test_mode=False,
                 pipeline=train_pipeline))
# the unaugmented splits k-NN evaluation embeds (mmsbam.evaluation.knn);
# MMEngine wants a test loop and evaluator beside a test dataloader
test_cfg = dict()
test_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=500, num_workers=0, persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(fmnist, split='test', test_mode=True, pipeline=to_rgb + [
        dict(type='Resize', scale=img_size), dict(type='PackInputs')]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999),
                   weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(
        custom_keys={
            'norm': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.)
        }))
max_epochs = 3
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5,
         by_epoch=True, begin=1, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
randomness = dict(seed=0, diff_rank_seed=True)
custom_hooks = [dict(type='RandomStateHook')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=256)
