# Linear probe of an iBoT ViT-S/16 teacher: MMPretrain's MAE linear
# benchmark with the ViT-S/16 backbone (deit-small: 384-d, 12 layers,
# 6 heads). Extract the teacher first, then
#   --cfg-options model.backbone.init_cfg.checkpoint=teacher.pth
# (tools/model_converters/ibot_extract_backbone.py; stock VisionTransformer
# keys). Last class token only, not iBoT's 4-block concatenation.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(
    backbone=dict(arch='deit-small', frozen_stages=12),
    neck=dict(input_features=384),
    head=dict(in_channels=384))
