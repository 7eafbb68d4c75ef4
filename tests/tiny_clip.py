"""A tiny CLIP checkpoint with random weights, written locally, for the
CLIP-target rows of the method table (MILAN, EVA, iTPN-CLIP): the stock
``CLIPGenerator`` builds the stock CLIP classes from it, with no network
access. Its numbers mean nothing; the masking contract needs none."""
import os
import os.path as osp
import tempfile

import torch

from mmpretrain.models.utils.clip_generator_helper import CLIP

EMBED_DIM = 32  # CLIP feature width (the target's)


def tiny_clip_checkpoint(image_size: int, patch_size: int) -> str:
    """Path of a 1-layer, 64-wide random CLIP for ``image_size`` px RGB
    images cut in ``patch_size`` px patches (written once per process)."""
    path = osp.join(tempfile.gettempdir(),
                    f'mmsbam_tiny_clip_{image_size}_{patch_size}.pth')
    if not osp.isfile(path):
        torch.manual_seed(0)
        clip = CLIP(embed_dim=EMBED_DIM, image_resolution=image_size,
                    vision_layers=1, vision_width=64,
                    vision_patch_size=patch_size, context_length=4,
                    vocab_size=8, transformer_width=64, transformer_heads=1,
                    transformer_layers=1)
        tmp = f'{path}.{id(clip)}.tmp'
        torch.save(clip.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: parallel runs see a whole file
    return path
