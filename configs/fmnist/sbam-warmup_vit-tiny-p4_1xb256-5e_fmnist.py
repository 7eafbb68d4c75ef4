# The Fashion-MNIST demo with the paper's recipe in small: random masking
# (stock MAE) for the first epoch, then SBAM; masking statistics in the log
# and a picture of images, salience, masks and reconstructions every 100
# iterations (work_dir/<timestamp>/vis_data/vis_image/sbam_masks_<iter>.png).
# 60,000 images / 256 = 235 iterations per epoch. custom_hooks replaces the
# base's list, so the base's RandomStateHook (exact resume) is repeated here;
# keep SBAMHook first: tests address it as custom_hooks.0.
_base_ = './sbam_vit-tiny-p4_1xb256-5e_fmnist.py'

custom_hooks = [
    dict(
        type='SBAMHook',
        warmup_epochs=1,  # or warmup_iters=..., not both
        interval=None,  # statistics at the LoggerHook's interval (20)
        vis_interval=100,  # 0 turns the pictures off
        vis_images=4),
    dict(type='RandomStateHook')
]
