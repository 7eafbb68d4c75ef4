# Linear probe of a BootMAE ViT-B/16 (official main_linprobe.py +
# mae_util/models.py, scripts/linear/bash_linear_BootMAE_Base_800.sh):
# only the first 10 blocks (the script's LAYER=10; the README says 9),
# mean of the patch tokens, a fresh frozen identity LayerNorm, BatchNorm
# without affine, a linear layer; LARS lr 6.4 at batch 16384 (blr 0.1),
# 90 epochs, 10 warm-up, wd 0. MMPretrain's MAE linear config is the same
# but for the class token of the last block, and batch 2048 with lr 6.4
# as in MMPretrain's config: the official lr at batch 2048 would be
# 0.1 x 2048 / 256 = 0.8 (NOT VERIFIED which one suits 2048; set
# optim_wrapper.optimizer.lr). The checkpoint's backbone.* keys load
# into the stock VisionTransformer (blocks 10, 11 and ln1 are unused and
# reported as unexpected keys).
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=768, num_layers=10, num_heads=12,
                  feedforward_channels=3072),
        frozen_stages=10,  # every block and the fresh LayerNorm (ln2)
        out_type='avg_featmap',
        final_norm=False))
