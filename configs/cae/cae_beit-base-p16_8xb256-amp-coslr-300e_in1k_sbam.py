# CAE ViT-B/16, 300 epochs, with SBAM masks (per-token SBM at the count of CAE's block masks; the momentum teacher encodes their complement).
# MMPretrain's stock config plus the import and three switches: the
# backbone; the algorithm, which marks which copy of the backbone is the
# momentum teacher (it never remasks); the neck, whose mask tokens follow
# the batch's masked count (needed by AMR, identical otherwise). The
# collate_fn line is the stack fix every config inheriting `mmpretrain::`
# needs (docs/stack_fixes.md).
_base_ = 'mmpretrain::cae/cae_beit-base-p16_8xb256-amp-coslr-300e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

model = dict(
    type='SBAMCAE',
    backbone=dict(type='SBAMCAEPretrainViT'),
    neck=dict(type='SBAMCAENeck'))

train_dataloader = dict(collate_fn=dict(_delete_=True, type='default_collate'))
