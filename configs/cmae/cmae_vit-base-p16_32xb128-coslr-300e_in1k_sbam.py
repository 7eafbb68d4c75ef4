# CMAE ViT-B/16, 300 epochs, with SBAM: the one-line switch.
_base_ = './cmae_vit-base-p16_32xb128-coslr-300e_in1k.py'

model = dict(backbone=dict(type='SBAMCMAEViT'))
