# MAE ViT-L/16 with SBAM, the paper's 400-epoch schedule (stock MMPretrain
# schedule, one-line backbone switch; collate_fn: stack fix, see
# docs/stack_fixes.md).
_base_ = 'mmpretrain::mae/mae_vit-large-p16_8xb512-amp-coslr-400e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(backbone=dict(type='SBAMViT'))

train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
