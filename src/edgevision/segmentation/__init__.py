"""Semantic segmentation: model specs (LR-ASPP, DeepLabv3, real-time U-Net), data, metrics, training.

See docs/segmentation.md.
"""

from .models import DeepLabV3Spec, LRASPPSpec, SegmentationModel, SegmentationSpec, UNetSpec, block_path_at

__all__ = ["DeepLabV3Spec", "LRASPPSpec", "SegmentationModel", "SegmentationSpec", "UNetSpec", "block_path_at"]
