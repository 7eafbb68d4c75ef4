# SimMIM + SBAM on Fashion-MNIST with the salience temperature set to the
# embedding width (48) instead of the paper's 1: at tau = 1 the salience of
# the cell embeddings ranks background cells high (docs/results_simmim.md);
# a larger tau spreads it (as it pointed MAE's salience at the garment).
_base_ = './simmim-sbam_swin-tiny-w4_1xb256-3e_fmnist.py'

model = dict(backbone=dict(masker=dict(temperature=48.0)))
