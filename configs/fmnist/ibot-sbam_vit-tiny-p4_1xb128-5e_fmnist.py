# iBoT + SBAM on Fashion-MNIST: salience-based masks from the teacher's
# last-block attention (SBAM's column sum), iBoT's per-image ratios.
_base_ = './ibot_vit-tiny-p4_1xb128-5e_fmnist.py'

model = dict(mask_generator=dict(_delete_=True, type='iBOTSalienceMaskGenerator', salience_source='teacher'))
