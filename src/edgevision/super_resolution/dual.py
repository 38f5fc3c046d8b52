"""DRN's dual regression (Guo et al., "Closed-loop Matters: Dual Regression Networks for Single Image
Super-Resolution", CVPR 2020): a small learned downsampler D maps the SR output back to the LR input and
the closed loop adds ``lambda * ||D(SR) - LR||_1`` to the primal loss (Eq. 1; lambda = 0.1, the paper's
and the release's ``--dual_weight``).

Dual module as the release (guoyongcs/DRN ``model/common.py`` ``DownBlock``): per x2 of the scale a
conv3x3 stride 2 (no bias) + LeakyReLU(0.2), then conv3x3 back to the colour channels (no bias); the
release's DRN uses ``n_feats`` features (16 in DRN-S). DRN's own primal network outputs every
intermediate scale and has one dual module per x2 step; here the option works with *any* SR model, which
gives only the final output, so one dual module covers the whole scale (x4: two strided convs). At x3 the
single step is a stride-3 conv (the release has no x3). D is a training-only network: it is not part of
the SR model's checkpoint or its export.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import check_scale

__all__ = ["DualDownsampler", "DRN_DUAL_WEIGHT"]

#: lambda of DRN's Eq. 1 (paper Sec. 4.1 and the release's default --dual_weight)
DRN_DUAL_WEIGHT = 0.1


class DualDownsampler(nn.Module):
    """SR [N, C, h*s, w*s] -> LR estimate [N, C, h, w]."""

    def __init__(self, scale: int, channels: int = 3, features: int = 16, negative_slope: float = 0.2) -> None:
        super().__init__()
        check_scale(scale)
        strides = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        width = channels
        for stride in strides:
            # kernel 3 at stride 2 (the release), kernel 3 at stride 3: every HR pixel seen once, LR grid aligned
            layers += [nn.Conv2d(width, features, 3, stride=stride, padding=1 if stride == 2 else 0, bias=False),
                       nn.LeakyReLU(negative_slope, inplace=True)]
            width = features
        layers.append(nn.Conv2d(features, channels, 3, padding=1, bias=False))
        self.scale = scale
        self.body = nn.Sequential(*layers)

    def forward(self, sr: torch.Tensor) -> torch.Tensor:
        return self.body(sr)
