# Fine-tuning of an SBAM ViT-B/16 checkpoint: MMPretrain's MAE fine-tune
# benchmark unchanged but for the import. Give the checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_400.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
