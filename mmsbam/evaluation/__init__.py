"""Evaluation of pre-trained encoders, callable from Python."""
from .knn import (build_encoder_model, dataset_split, extract_features,
                  knn_classify, knn_top1, pixel_knn_top1, split_dataset,
                  split_loader)
from .linear_probe import linear_probe_top1

__all__ = [
    'build_encoder_model', 'split_dataset', 'dataset_split', 'split_loader',
    'extract_features', 'knn_classify', 'knn_top1', 'pixel_knn_top1',
    'linear_probe_top1'
]
