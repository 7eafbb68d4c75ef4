# MAE HiViT-B/16, 400 epochs, with SBAM masking: MMPretrain's stock config
# plus the import and the one-line backbone switch. The collate_fn line is
# the stack fix every config inheriting `mmpretrain::` needs (MMEngine
# passes the base's `_scope_` key to default_collate()); see
# docs/stack_fixes.md.
_base_ = 'mmpretrain::mae/mae_hivit-base-p16_8xb512-amp-coslr-400e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(backbone=dict(type='SBAMMAEHiViT'))

train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
