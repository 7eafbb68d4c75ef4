# Fine-tuning of a CMAE ViT-B/16 online encoder: MMPretrain's MAE
# fine-tuning config (mean of the patch tokens + fc_norm, layer decay 0.65,
# drop path 0.1, 5 warm-up epochs, cosine to 1e-6, Mixup 0.8 / CutMix 1.0,
# RandAugment m9, random erasing 0.25, label smoothing 0.1) with CMAE's
# learning rate for the 1600e checkpoint: 2.5e-4 x 1024/256 = 1e-3 at batch
# 1024 (official configs/fine-tuning/cmae/cmae_base_pre1600_8x128_100e_in1k_
# amp.py; the 300e checkpoint: 5e-4 x 4 = 2e-3, the stock value). The
# pre-training checkpoint loads as it is (prefix 'backbone.'; the target
# encoder's keys start with 'teacher.' and are skipped):
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/cmae/epoch_1600.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

optim_wrapper = dict(optimizer=dict(lr=2.5e-4 * 1024 / 256))
