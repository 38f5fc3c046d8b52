"""Depthwise-separable convolution (MobileNetV1, Howard et al. 2017, Fig. 3; Xception's "separable conv").

    k x k depthwise (stride s) -> BN -> act -> 1x1 pointwise -> BN -> act

Unlike the MobileNetV2 block it has no expansion and keeps the activation after the pointwise
conv (``pointwise_activation=False`` gives the linear variant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check_choice
from .base import BlockSpec, ResolvedBlock, check_activation

__all__ = ["DepthwiseSeparableSpec", "DepthwiseSeparable"]


@dataclass(frozen=True, kw_only=True)
class DepthwiseSeparableSpec(BlockSpec):
    kind: ClassVar[str] = "depthwise_separable"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    activation: str = "relu"
    pointwise_activation: bool = True

    def validate(self) -> None:
        super().validate()
        check_choice(self, "kernel_size", (3, 5, 7))
        check_activation(self)

    def build(self, block: ResolvedBlock) -> nn.Module:
        act = get_activation(self.activation)
        return DepthwiseSeparable(
            block.in_channels, block.out_channels, self.kernel_size, self.stride, act, act if self.pointwise_activation else None
        )


class DepthwiseSeparable(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        pointwise_act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(in_channels, in_channels, kernel_size, stride, groups=in_channels, act=act)
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, act=pointwise_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (B, C, H, W) -> (B, C, H/s, W/s) -> (B, C', H/s, W/s)
