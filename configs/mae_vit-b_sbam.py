# The headline config: MAE ViT-B/16, 300 epochs, with SBAM masking. An alias
# of configs/mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sbam.py, which
# is MMPretrain's stock config plus the import, the one-line backbone switch
# and the collate_fn stack fix (see configs/mae/README.md).
_base_ = './mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k_sbam.py'
