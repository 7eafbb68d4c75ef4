# CMAE ViT-B/16 with SBAM: the one-line switch from random 2x2 cells to
# salience-based cells (the online view's patch-embedding salience, averaged
# per cell; CMAE's count of masked cells).
_base_ = './cmae_vit-base-p16_32xb128-coslr-1600e_in1k.py'

model = dict(backbone=dict(type='SBAMCMAEViT'))
