# Fine-tuning of an SBAM ViT-L/16 checkpoint
# (see vit-base-p16_8xb128-coslr-100e_in1k_sbam.py).
_base_ = 'mmpretrain::mae/benchmarks/vit-large-p16_8xb128-coslr-50e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
