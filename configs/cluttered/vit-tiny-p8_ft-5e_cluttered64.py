# End-to-end fine-tuning of the cluttered-canvas tiny ViT
# (mae_vit-tiny-p8_1xb256-cluttered64.py): MMPretrain's MAE fine-tuning
# benchmark in small, one recipe for every arm of the paper-protocol study.
#
# Kept from the stock recipe: AdamW with layer-wise LR decay, label
# smoothing 0.1, drop path 0.1, mean-pooled tokens without the final norm,
# linear warm-up then cosine to 1e-6. Changed for the tiny model and the
# CPU: the 4-layer 128-d ViT on 64 px grey canvases, layer decay 0.75 (4
# layers instead of 12), LR 1e-3 at batch 256, 5 epochs (1 warm-up) on the
# first 10,000 training canvases, no RandAugment or RandomErasing (colour
# policies on grey 64 px canvases), no Mixup/CutMix (they are regularisers
# of a 100-epoch schedule: with them, 5 epochs from MAE weights reached
# 34.3 % top-1), fp32 OptimWrapper.
# Load a pre-training checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

img_size = 64
model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=128,
            num_layers=4,
            num_heads=4,
            feedforward_channels=512),
        img_size=img_size,
        patch_size=8,
        in_channels=1,
        init_cfg=dict(checkpoint='')),
    head=dict(num_classes=10, in_channels=128),
    train_cfg=dict(_delete_=True))

data_preprocessor = dict(
    _delete_=True, num_classes=10, mean=[22.41], std=[59.60], to_rgb=False)
cluttered = dict(
    _delete_=True,
    type='ClutteredFashionMNIST',
    data_root='data/fashion_mnist',
    canvas=img_size,
    scale_range=(0.8, 1.2),
    num_fragments=6,
    fragment_size=8,
    seed=0,
    download=False)
train_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        cluttered,
        test_mode=False,
        indices=10000,
        pipeline=[
            dict(type='RandomResizedCrop', scale=img_size,
                 crop_ratio_range=(0.6, 1.0)),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackInputs')
        ]))
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(cluttered, test_mode=True, split='test',
                 pipeline=[dict(type='PackInputs')]))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(layer_decay_rate=0.75))
max_epochs = 5
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True,
         begin=1, end=max_epochs, eta_min=1e-6, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs,
                    max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
auto_scale_lr = dict(base_batch_size=256)
