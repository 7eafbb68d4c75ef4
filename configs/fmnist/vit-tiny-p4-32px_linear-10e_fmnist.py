# Linear probe of a tiny ViT pre-trained on 32 px Fashion-MNIST views (the
# CMAE configs): vit-tiny-p4_linear-10e_fmnist.py with the images resized
# 28 -> 32 px (bicubic) and a 32 px backbone (8 x 8 patches). Load a
# pre-training checkpoint as it is (its backbone.* keys) with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = './vit-tiny-p4_linear-10e_fmnist.py'

pipeline = [dict(type='Resize', scale=32, interpolation='bicubic'),
            dict(type='PackInputs')]
model = dict(backbone=dict(img_size=32))
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader
