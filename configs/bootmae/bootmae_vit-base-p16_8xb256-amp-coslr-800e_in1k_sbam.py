# BootMAE ViT-B/16 with SBAM: the one-line switch. Salience-based masks at
# ratio 0.75 (the same 147 of 196 tokens), salience from the student's
# patch embeddings; model.backbone.salience_source='teacher' takes the EMA
# encoder's last-block attention on the unmasked image instead.
_base_ = './bootmae_vit-base-p16_8xb256-amp-coslr-800e_in1k.py'

model = dict(backbone=dict(type='SBAMBootMAEViT'))
