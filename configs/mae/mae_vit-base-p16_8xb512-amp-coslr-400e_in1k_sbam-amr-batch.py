# SBAM with the adaptive masking ratio (AMR), mode='batch': one ratio per
# batch from the mean salient fraction, as in the authors' code. The ratio
# of each image lies in [0.75 - ratio_var, 0.75 + ratio_var].
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-400e_in1k_sbam.py'

model = dict(
    backbone=dict(amr=dict(ratio_var=0.1, delta=0.2, mode='batch')))
