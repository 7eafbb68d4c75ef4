# SBAM with the adaptive masking ratio (AMR), mode='sample': one ratio per
# image (padded encoder, stock decoder and head). The ratio
# of each image lies in [0.75 - ratio_var, 0.75 + ratio_var].
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-800e_in1k_sbam.py'

model = dict(
    backbone=dict(amr=dict(ratio_var=0.1, delta=0.2, mode='sample')))
