"""SSD default boxes (priors) and the SSD/Faster R-CNN box coder.

Priors follow Liu et al. 2016 (SSD, Sec. 2.2) as torchvision's ``DefaultBoxGenerator`` lays them
out, so imported SSDLite weights see the same anchors in the same order: level ``k`` of ``m`` has
scale ``s_k = min + (max - min) k / (m - 1)`` (``s_m = 1``), boxes ``(s_k, s_k)``,
``(sqrt(s_k s_{k+1}),)*2`` and ``(s_k sqrt(a), s_k / sqrt(a))`` plus its transpose per aspect ratio
``a``, centred at ``((j + 0.5) / W_k, (i + 0.5) / H_k)``; location-major, anchor-minor.

The coder encodes a ground-truth box against its anchor as
``(wx dx / w_a, wy dy / h_a, ww log(w / w_a), wh log(h / h_a))`` with SSD's weights (10, 10, 5, 5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .boxes import cxcywh_to_xyxy

__all__ = ["BoxCoder", "ssd_anchor_counts", "ssd_default_boxes"]


def _level_sizes(aspect_ratios: Sequence[Sequence[float]], min_ratio: float, max_ratio: float) -> list[list[tuple[float, float]]]:
    levels = len(aspect_ratios)
    scales = [min_ratio + (max_ratio - min_ratio) * k / (levels - 1.0) for k in range(levels)] if levels > 1 else [min_ratio]
    scales.append(1.0)
    sizes = []
    for k, ratios in enumerate(aspect_ratios):
        level = [(scales[k], scales[k]), (math.sqrt(scales[k] * scales[k + 1]),) * 2]
        for ratio in ratios:
            root = math.sqrt(ratio)
            level += [(scales[k] * root, scales[k] / root), (scales[k] / root, scales[k] * root)]
        sizes.append(level)
    return sizes


def ssd_anchor_counts(aspect_ratios: Sequence[Sequence[float]]) -> list[int]:
    """Anchors per location of each level: 2 + 2 per aspect ratio."""
    return [2 + 2 * len(ratios) for ratios in aspect_ratios]


def ssd_default_boxes(feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int], *,
                      aspect_ratios: Sequence[Sequence[float]], min_ratio: float = 0.2, max_ratio: float = 0.95,
                      clip: bool = True) -> torch.Tensor:
    """(sum H_k W_k A_k, 4) xyxy priors in pixels of an ``image_size`` = (H, W) image."""
    height, width = image_size
    boxes = []
    for (rows, cols), sizes in zip(feature_sizes, _level_sizes(aspect_ratios, min_ratio, max_ratio)):
        wh = torch.tensor(sizes, dtype=torch.float32)
        if clip:
            wh = wh.clamp(0, 1)
        centre_y, centre_x = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing="ij")
        centres = torch.stack((centre_x, centre_y), dim=-1).reshape(-1, 1, 2).expand(-1, len(sizes), 2)
        level = torch.cat((centres, wh[None].expand(rows * cols, -1, -1)), dim=-1).reshape(-1, 4)
        boxes.append(level)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    return cxcywh_to_xyxy(torch.cat(boxes) * scale)


class BoxCoder:
    """Anchor-relative box deltas with per-coordinate weights (SSD: (10, 10, 5, 5))."""

    def __init__(self, weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0),
                 clip_log_scale: float = math.log(1000.0 / 16)) -> None:
        self.weights = weights
        self.clip_log_scale = clip_log_scale  # exp() of a huge predicted scale would overflow

    def encode(self, boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """(..., 4) xyxy targets and anchors -> (..., 4) deltas."""
        wx, wy, ww, wh = self.weights
        anchor_w, anchor_h = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
        anchor_x, anchor_y = anchors[..., 0] + 0.5 * anchor_w, anchors[..., 1] + 0.5 * anchor_h
        box_w, box_h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        box_x, box_y = boxes[..., 0] + 0.5 * box_w, boxes[..., 1] + 0.5 * box_h
        return torch.stack((wx * (box_x - anchor_x) / anchor_w, wy * (box_y - anchor_y) / anchor_h,
                            ww * torch.log(box_w / anchor_w), wh * torch.log(box_h / anchor_h)), dim=-1)

    def decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """(..., 4) deltas and anchors -> (..., 4) xyxy boxes (inverse of :meth:`encode`)."""
        wx, wy, ww, wh = self.weights
        anchor_w, anchor_h = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
        anchor_x, anchor_y = anchors[..., 0] + 0.5 * anchor_w, anchors[..., 1] + 0.5 * anchor_h
        centre_x = deltas[..., 0] / wx * anchor_w + anchor_x
        centre_y = deltas[..., 1] / wy * anchor_h + anchor_y
        width = torch.exp((deltas[..., 2] / ww).clamp(max=self.clip_log_scale)) * anchor_w
        height = torch.exp((deltas[..., 3] / wh).clamp(max=self.clip_log_scale)) * anchor_h
        return torch.stack((centre_x - 0.5 * width, centre_y - 0.5 * height,
                            centre_x + 0.5 * width, centre_y + 0.5 * height), dim=-1)


def halving_grid_sizes(height: int, width: int, *, halvings_before: int, levels: int) -> list[tuple[int, int]]:
    """Cell grids of ``levels`` feature levels when every stride-2 op maps n -> ceil(n / 2): the first level after
    ``halvings_before`` such ops, then one more per level (padded convs and pools of this package's detectors)."""
    sizes = []
    for _ in range(halvings_before):
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    for _ in range(levels):
        sizes.append((height, width))
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return sizes
