"""The standard monocular depth metrics (Eigen et al. 2014, Sec. 4; the columns of Laina et al. 2016,
Table 2 and 3) on valid pixels.

Per image, over the pixels with a finite ground truth in (min_depth, max_depth] and with the
prediction clamped to [min_depth, max_depth] (the Eigen/BTS evaluation convention, so log terms
are defined):

- ``abs_rel``  = mean |d - d*| / d*            - ``sq_rel``  = mean (d - d*)^2 / d*
- ``rmse``     = sqrt(mean (d - d*)^2)         - ``rmse_log`` = sqrt(mean (ln d - ln d*)^2)
- ``log10``    = mean |log10 d - log10 d*|     - ``delta1..3`` = fraction with max(d/d*, d*/d) < 1.25^k

A data set's value is the mean over images of the per-image values (Monodepth / BTS ``eval``);
images without a valid pixel are skipped and counted.
"""

from __future__ import annotations

import math

import torch

__all__ = ["DEPTH_METRICS", "valid_depth_mask", "image_depth_metrics", "DepthMetricAccumulator"]

DEPTH_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3")


def valid_depth_mask(target: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Pixels whose ground truth is finite and in (min_depth, max_depth] (0 = missing in NYU / Kinect)."""
    return torch.isfinite(target) & (target > min_depth) & (target <= max_depth)


def image_depth_metrics(prediction: torch.Tensor, target: torch.Tensor, min_depth: float, max_depth: float) -> dict[str, float] | None:
    """The metrics of one image ([H, W] or [1, H, W] each, same shape); None when no pixel is valid."""
    valid = valid_depth_mask(target, min_depth, max_depth)
    if not bool(valid.any()):
        return None
    d = prediction[valid].double().clamp(min_depth, max_depth)
    g = target[valid].double()
    ratio = torch.maximum(d / g, g / d)
    diff = d - g
    out = {
        "abs_rel": (diff.abs() / g).mean(),
        "sq_rel": (diff**2 / g).mean(),
        "rmse": (diff**2).mean().sqrt(),
        "rmse_log": ((d.log() - g.log()) ** 2).mean().sqrt(),
        "log10": (d.log10() - g.log10()).abs().mean(),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = (ratio < 1.25**k).double().mean()
    return {name: float(value) for name, value in out.items()}


class DepthMetricAccumulator:
    """Mean over images of :func:`image_depth_metrics`; ``update`` takes batches [N, 1, H, W]."""

    def __init__(self, min_depth: float, max_depth: float) -> None:
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.sums = dict.fromkeys(DEPTH_METRICS, 0.0)
        self.images = 0
        self.skipped = 0  # images without a valid pixel
        self.valid_pixels = 0

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
        for pred, true in zip(prediction, target):
            values = image_depth_metrics(pred, true, self.min_depth, self.max_depth)
            if values is None:
                self.skipped += 1
                continue
            self.images += 1
            self.valid_pixels += int(valid_depth_mask(true, self.min_depth, self.max_depth).sum())
            for name, value in values.items():
                self.sums[name] += value

    def compute(self) -> dict[str, float]:
        """Every metric (NaN when no image had a valid pixel) plus ``images``, ``skipped_images``, ``valid_pixels``."""
        means = {name: (total / self.images if self.images else math.nan) for name, total in self.sums.items()}
        return {**means, "images": self.images, "skipped_images": self.skipped, "valid_pixels": self.valid_pixels}
