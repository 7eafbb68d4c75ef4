# Linear probe of an SBAM ViT-B/16 checkpoint: MMPretrain's MAE linear
# benchmark unchanged but for the import (checkpoint loading under
# torch >= 2.6, see docs/stack_fixes.md). Give the checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_400.pth
# The stock VisionTransformer loads it: SBAM adds no parameters.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
