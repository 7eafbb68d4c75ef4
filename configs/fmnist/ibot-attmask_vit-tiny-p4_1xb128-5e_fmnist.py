# iBoT + teacher CLS-row salience (AttMask-style rows, SBAM's noise and
# iBoT's per-image ratios) on Fashion-MNIST.
_base_ = './ibot_vit-tiny-p4_1xb128-5e_fmnist.py'

model = dict(mask_generator=dict(_delete_=True, type='iBOTSalienceMaskGenerator', salience_source='teacher', teacher_rows='cls'))
