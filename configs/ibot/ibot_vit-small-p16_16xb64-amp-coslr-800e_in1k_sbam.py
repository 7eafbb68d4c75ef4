# iBoT ViT-S/16 with SBAM: the one-line switch from blockwise to
# salience-based masks (the teacher's last-block attention, SBAM's column
# sum; the same per-image ratios as iBoT).
_base_ = './ibot_vit-small-p16_16xb64-amp-coslr-800e_in1k.py'

model = dict(mask_generator=dict(_delete_=True, type='iBOTSalienceMaskGenerator', salience_source='teacher'))
