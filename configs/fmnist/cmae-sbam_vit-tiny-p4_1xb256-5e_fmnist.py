# CMAE + SBAM on Fashion-MNIST: salience-based 2 x 2 cells (the online
# view's patch-embedding salience averaged per cell), CMAE's count.
_base_ = './cmae_vit-tiny-p4_1xb256-5e_fmnist.py'

model = dict(backbone=dict(type='SBAMCMAEViT'))
