# MAE pre-training of a tiny ViT on cluttered, translated Fashion-MNIST
# (ClutteredFashionMNIST, 64 x 64 canvases), on CPU: the calibrated base of
# the paper-protocol study (docs/results_protocol.md).
#
# Derived from the Fashion-MNIST demo config (itself MMPretrain's MAE
# config), so loss, norm_pix, AdamW, weight-decay rules and LR schedule
# shape are stock MAE. Overrides: 64 px canvases cut into 8 px patches
# (64 tokens), a 4-layer ViT of width 128, the first 10,000 training
# canvases per epoch, the canvases' own mean/std. 'MAEViT' is stock MAE;
# the SBAM variants switch model.backbone.type to 'SBAMViT'.
_base_ = '../fmnist/sbam_vit-tiny-p4_1xb256-5e_fmnist.py'

img_size = 64
patch_size = 8
num_patches = (img_size // patch_size)**2
width = 128
arch = dict(
    _delete_=True,
    embed_dims=width,
    num_layers=4,
    num_heads=4,
    feedforward_channels=4 * width)
model = dict(
    backbone=dict(
        type='MAEViT',
        arch=arch,
        img_size=img_size,
        patch_size=patch_size,
        mask_ratio=0.75),
    neck=dict(
        num_patches=num_patches,
        patch_size=patch_size,
        embed_dim=width,
        decoder_embed_dim=64,
        decoder_depth=2,
        decoder_num_heads=4),
    head=dict(patch_size=patch_size))

# measured on the first 10,000 training canvases (seed 0): mean 22.41,
# std 59.60 (about 11 % of each canvas is garment)
data_preprocessor = dict(mean=[22.41], std=[59.60])
train_pipeline = [
    dict(type='RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClutteredFashionMNIST',
        data_root='data/fashion_mnist',
        test_mode=False,
        indices=10000,
        canvas=img_size,
        scale_range=(0.8, 1.2),
        num_fragments=6,
        fragment_size=8,
        seed=0,
        download=False,
        pipeline=train_pipeline))

max_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1))
