# SimMIM Swin-B, 100 epochs, 192 px, with SBAM masks: salience averaged over SimMIM's 32-px mask cells, the pipeline's per-image cell count kept.
# MMPretrain's stock config plus the import and the one-line backbone
# switch; the collate_fn line is the stack fix every config inheriting
# `mmpretrain::` needs (docs/stack_fixes.md).
_base_ = 'mmpretrain::simmim/simmim_swin-base-w6_16xb128-amp-coslr-100e_in1k-192px.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(backbone=dict(type='SBAMSimMIMSwinTransformer'))

train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
