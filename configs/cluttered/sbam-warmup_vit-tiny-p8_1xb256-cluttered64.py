# SBAM as the paper trains it, on the cluttered canvases: random masking
# (stock MAE) for the first quarter of the epochs through SBAMHook, then
# salience-based masking with per-image adaptive ratios (AMR,
# mode='sample'). Everything else is mae_vit-tiny-p8_1xb256-cluttered64.py.
# AMR's delta and ratio_var are the package defaults (docs/method.md);
# the study sets ratio_var per ratio (amr_ratio_var: 0.1, or less so that
# the ratio stays in (0, 1)). Without the amr line this is SBM (fixed
# ratio) with the same warm-up.
_base_ = './mae_vit-tiny-p8_1xb256-cluttered64.py'

model = dict(
    backbone=dict(
        type='SBAMViT',
        amr=dict(mode='sample', ratio_var=0.1, delta=0.2)))
# custom_hooks replaces the base's list: RandomStateHook (exact resume) is
# repeated; keep SBAMHook first (the study sets custom_hooks.0.warmup_epochs)
custom_hooks = [
    dict(type='SBAMHook', warmup_epochs=5, interval=None, vis_interval=0),
    dict(type='RandomStateHook')
]
