# Linear probe of the tiny SimMIM Swin on Fashion-MNIST (docs/results_simmim.md):
# the Fashion-MNIST linear config of the tiny ViT with the backbone swapped
# for the frozen 2-stage Swin (both stages and the last norm frozen), global
# average pooling and the grey images repeated into RGB at 32 px. Load a
# SimMIM (or SimMIM + SBAM) checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './vit-tiny-p4_linear-10e_fmnist.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        arch=dict(embed_dims=48, depths=[2, 2], num_heads=[3, 6]),
        img_size=32,
        out_indices=(1, ),
        frozen_stages=1,
        stage_cfgs=dict(block_cfgs=dict(window_size=4)),
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='work_dirs/simmim-sbam_swin-tiny-w4_'
                      '1xb256-3e_fmnist/epoch_3.pth')),
    neck=dict(_delete_=True, type='GlobalAveragePooling'),
    head=dict(in_channels=96))

data_preprocessor = dict(mean=[72.94] * 3, std=[90.02] * 3)
pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/Grayscale', num_output_channels=3),
    dict(type='PILToNumpy', to_bgr=False),
    dict(type='Resize', scale=32),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
