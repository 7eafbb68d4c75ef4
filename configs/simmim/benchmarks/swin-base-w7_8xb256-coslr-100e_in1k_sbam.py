# Fine-tuning of SimMIM(+SBAM) Swin-B, 224 px: MMPretrain's config unchanged but
# for the import, which registers mmsbam's fix for loading MMEngine
# checkpoints under torch >= 2.6 (docs/stack_fixes.md). Give the SBAM
# pre-training checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::simmim/benchmarks/swin-base-w7_8xb256-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
