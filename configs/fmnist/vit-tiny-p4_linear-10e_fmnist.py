# Linear probe of the demo's tiny ViT on Fashion-MNIST: MMPretrain's MAE
# linear benchmark with the tiny backbone, the Fashion-MNIST splits, SGD
# instead of LARS at batch 2048, fp32 OptimWrapper for the CPU. Load an SBAM
# (or stock MAE) checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=64,
            num_layers=4,
            num_heads=4,
            feedforward_channels=256),
        img_size=28,
        patch_size=4,
        patch_cfg=dict(in_channels=1),
        frozen_stages=4,
        out_type='cls_token',
        init_cfg=dict(checkpoint='work_dirs/sbam_vit-tiny-p4_1xb256-5e_fmnist'
                      '/epoch_5.pth')),
    neck=dict(input_features=64),
    head=dict(num_classes=10, in_channels=64, topk=(1, )))

data_root = 'data/fashion_mnist'
data_preprocessor = dict(
    _delete_=True, num_classes=10, mean=[72.94], std=[90.02], to_rgb=False)
fmnist = dict(
    _delete_=True,
    type='FashionMNIST',
    data_root=data_root,
    download=False,
    pipeline=[dict(type='PackInputs')])
train_dataloader = dict(
    batch_size=256, num_workers=0, persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(fmnist, test_mode=False))
val_dataloader = dict(
    batch_size=500, num_workers=0, persistent_workers=False,
    collate_fn=dict(type='default_collate'),
    dataset=dict(fmnist, split='test', test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0))
max_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=50))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
