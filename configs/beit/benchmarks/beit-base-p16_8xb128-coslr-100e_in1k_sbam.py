# Fine-tuning of BEiT(+SBAM) ViT-B/16: MMPretrain's config unchanged but
# for the import, which registers mmsbam's fix for loading MMEngine
# checkpoints under torch >= 2.6 (docs/stack_fixes.md). Give the SBAM
# pre-training checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
_base_ = 'mmpretrain::beit/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
