# BootMAE + SBAM on Fashion-MNIST: salience-based masks of the same 37 of
# 49 tokens, salience from the student's patch embeddings.
_base_ = './bootmae_vit-tiny-p4_1xb256-5e_fmnist.py'

model = dict(backbone=dict(type='SBAMBootMAEViT'))
