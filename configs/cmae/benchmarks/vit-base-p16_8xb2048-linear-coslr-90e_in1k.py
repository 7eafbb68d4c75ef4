# Linear probe of a CMAE ViT-B/16 online encoder: MMPretrain's MAE linear
# benchmark unchanged but for the import. CMAE's repository has no linear
# probe config or number; this is MAE's protocol (last class token, BN,
# LARS, 90 epochs). Load the pre-training checkpoint as it is:
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/cmae/epoch_1600.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
