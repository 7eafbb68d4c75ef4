# BEiT v1 ViT-B/16, 300 epochs, with SBAM masks (per-token SBM at the count of BEiT's block masks).
# MMPretrain's stock config plus the import and the one-line backbone
# switch; the collate_fn line is the stack fix every config inheriting
# `mmpretrain::` needs (docs/stack_fixes.md).
_base_ = 'mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(backbone=dict(type='SBAMBEiTPretrainViT'))

train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
