# SimMIM + SBAM on Fashion-MNIST: the baseline config with the one-line
# backbone switch (each of SimMIM's 2 x 2-patch mask cells is scored as one
# token, the mean of its patch embeddings, and each image keeps the
# pipeline's cell count), and SBAMHook's statistics and mask pictures.
_base_ = './simmim_swin-tiny-w4_1xb256-3e_fmnist.py'

model = dict(backbone=dict(type='SBAMSimMIMSwinTransformer', mask_unit=2))
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='SBAMHook', interval=20, vis_interval=200)
]
