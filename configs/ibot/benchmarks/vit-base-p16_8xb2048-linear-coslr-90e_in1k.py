# Linear probe of an iBoT ViT-B/16 teacher: MMPretrain's MAE linear
# benchmark unchanged but for the import. Extract the teacher first
# (tools/model_converters/ibot_extract_backbone.py), then
#   --cfg-options model.backbone.init_cfg.checkpoint=teacher.pth
# Last class token only, not iBoT's class token + average pooling.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
