# Fine-tuning of a BootMAE ViT-B/16 (official run_class_finetuning.py,
# scripts/finetune/bash_fine_BootMAE_Base_800.sh): the student encoder;
# 100 epochs, batch 2048 (8 x 256), lr 5e-3 (absolute at 2048), 20 warm-up
# epochs, cosine to 1e-6, layer decay 0.6, drop path 0.1, wd 0.05, AdamW
# (0.9, 0.999), layer scale 1e-5, mean pooling + fc_norm, head init
# x 0.001, mixup 0.8 / cutmix 1.0, label smoothing 0.1, RandAugment m9
# mstd 0.5, random erasing 0.25, model EMA 0.9998; inputs normalised with
# mean = std = 0.5. On MMPretrain's MAE fine-tuning config.
# Differences NOT closed: the official position embedding stays a fixed
# sin-cos during fine-tuning; the stock VisionTransformer trains the
# loaded one (MMPretrain's layer-decay constructor has no lr_mult).
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmsbam'], allow_failed_imports=False)

data_preprocessor = dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5])
train_dataloader = dict(batch_size=256)
model = dict(backbone=dict(layer_scale_init_value=1e-5))
optim_wrapper = dict(
    optimizer=dict(lr=5e-3),
    paramwise_cfg=dict(layer_decay_rate=0.6))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=80, by_epoch=True, begin=20,
         end=100, eta_min=1e-6, convert_to_iter_based=True)
]
custom_hooks = [dict(type='EMAHook', momentum=2e-4, priority='ABOVE_NORMAL')]
auto_scale_lr = dict(base_batch_size=2048)
