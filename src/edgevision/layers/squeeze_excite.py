"""Squeeze-and-excitation (Hu et al., SENet Sec. 3): channel attention from global pooling.

Used inside MobileNetV3, GhostNet, RepGhost and MobileOne-S4 blocks; each family's spec
decides the reduced width (``make_divisible`` lives in the resolve step, not here).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["SqueezeExcite"]


class SqueezeExcite(nn.Module):
    def __init__(
        self,
        channels: int,
        reduced_channels: int,
        act: Callable[[], nn.Module] = nn.ReLU,
        gate: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = act()
        self.expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)  # (B, C, H, W) -> (B, C, 1, 1)
        scale = self.gate(self.expand(self.act(self.reduce(scale))))
        return x * scale
