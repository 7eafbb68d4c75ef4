# Linear probe of an SBAM ViT-L/16 checkpoint (see vit-b_sbam_linear-90e_in1k.py).
_base_ = 'mmpretrain::mae/benchmarks/vit-large-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)
