"""Layers every super-resolution network here shares: the mean shift, the pixel-shuffle upsampler.

Networks take an LR image in [0, 1], ``[N, C, h, w]``, and return the SR image ``[N, C, h*s, w*s]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MeanShift", "PixelShuffleUpsampler", "check_scale"]

#: DIV2K's RGB mean, which CARN/EDSR subtract at the input and add back at the output
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def check_scale(scale: int) -> None:
    if scale not in (2, 3, 4, 8):
        raise ValueError(f"scale must be 2, 3, 4 or 8 (pixel-shuffle factors 2 and 3), got {scale}")


class MeanShift(nn.Module):
    """x - mean (``sign=-1``) or x + mean (``sign=+1``), per channel; a fixed buffer, not a parameter."""

    def __init__(self, mean: tuple[float, ...], sign: int) -> None:
        super().__init__()
        self.register_buffer("shift", sign * torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling (Shi et al. 2016): ×2 steps for 2/4/8, one ×3 step for 3.

    Each step is conv3x3 ``C -> C*r*r`` (``groups`` as CARN-M's grouped upsampler), ReLU when ``act``
    (CARN's ``_UpsampleBlock`` has one), then ``PixelShuffle(r)``: [N, C, h, w] -> [N, C, h*r, w*r].
    """

    def __init__(self, channels: int, scale: int, groups: int = 1, act: bool = True) -> None:
        check_scale(scale)
        steps = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        for r in steps:
            layers.append(nn.Conv2d(channels, channels * r * r, 3, padding=1, groups=groups))
            if act:
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.PixelShuffle(r))
        super().__init__(*layers)
