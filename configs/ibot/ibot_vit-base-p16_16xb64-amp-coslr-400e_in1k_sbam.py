# iBoT ViT-B/16 with SBAM: the one-line switch to salience-based masks
# (teacher attention, SBAM's column sum, iBoT's per-image ratios).
_base_ = './ibot_vit-base-p16_16xb64-amp-coslr-400e_in1k.py'

model = dict(mask_generator=dict(_delete_=True, type='iBOTSalienceMaskGenerator', salience_source='teacher'))
