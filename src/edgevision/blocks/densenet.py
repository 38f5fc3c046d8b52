"""Dense layer and transition of DenseNet-BC (Huang et al., "Densely Connected Convolutional
Networks", CVPR 2017, Sec. 3 and Table 1).

    dense layer:  x -> BN -> ReLU -> 1x1 conv (4k) -> BN -> ReLU -> 3x3 conv (k) -> concat(x, new)
    transition:   x -> BN -> ReLU -> 1x1 conv (theta * C) -> 2x2 average pool, stride 2

A dense layer is a block whose output width is its input width plus the growth rate k, so a
dense block of Table 1 is a run of these blocks and the resolve step tracks the growing width
like any other. Layout, names and counts follow the reference PyTorch release (torchvision
``densenet.py``): bias-free convs, ``bn_size * growth_rate`` = 4k bottleneck, compression
theta = 0.5 (``num_features // 2``), no ceil in the 2x2 pooling.

Deploy form: the BN between the two convs folds into the 1x1 conv; the first BN normalizes a
concatenation of earlier layers' outputs, shared with every later layer, behind a ReLU, so no
conv can absorb it: it becomes a ``ChannelAffine`` (``PreActivation``, shared with Wide ResNet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation
from .wide_resnet import PreActivation

__all__ = ["DenseLayerSpec", "DenseTransitionSpec", "DenseLayer", "DenseTransition"]


@dataclass(frozen=True, kw_only=True)
class DenseLayerSpec(BlockSpec):
    """One BN-ReLU-conv(1x1)-BN-ReLU-conv(3x3) layer; output = input ++ ``growth_rate`` new channels."""

    kind: ClassVar[str] = "dense_layer"
    supports_dilation: ClassVar[bool] = True
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)

    growth_rate: int = 32  # k (Table 1: 32 for DenseNet-121/169/201)
    bottleneck_channels: int = 128  # width of the 1x1 conv: bn_size * k = 4k (Sec. 3 "Bottleneck layers")
    dropout: float = 0.0  # after the 3x3 conv (torchvision ``drop_rate``; 0 for the ImageNet models)
    activation: str = "relu"
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        check_positive(self, "growth_rate", "bottleneck_channels")
        check(self, "dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=in_channels + scale(self.growth_rate), mid_channels=scale(self.bottleneck_channels))

    def build(self, block: ResolvedBlock) -> nn.Module:
        return DenseLayer(
            block.in_channels,
            block.out_channels - block.in_channels,
            block.mid_channels,
            self.dropout,
            act=get_activation(self.activation),
        )


@dataclass(frozen=True, kw_only=True)
class DenseTransitionSpec(BlockSpec):
    """BN-ReLU-conv(1x1) to ``floor(compression * C)`` channels, then 2x2 average pooling, stride 2."""

    kind: ClassVar[str] = "dense_transition"
    supports_dilation: ClassVar[bool] = True
    allowed_strides: ClassVar[tuple[int, ...]] = (2,)

    compression: float = 0.5  # theta (Sec. 3 "Compression"; DenseNet-BC)
    activation: str = "relu"
    stride: int = 2

    def validate(self) -> None:
        super().validate()
        check(self, "compression", 0.0 < self.compression <= 1.0, "in (0, 1]")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=max(1, math.floor(in_channels * self.compression)))  # 1024 -> 512 (torchvision //2)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return (input_size[0] // 2, input_size[1] // 2)  # 2x2 average pool, stride 2, no padding, floor

    def build(self, block: ResolvedBlock) -> nn.Module:
        return DenseTransition(block.in_channels, block.out_channels, act=get_activation(self.activation))


class DenseLayer(nn.Module):
    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bottleneck_channels: int,
        dropout: float = 0.0,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.preact = PreActivation(in_channels, act)  # norm1 -> relu1
        self.conv1 = ConvNormAct(in_channels, bottleneck_channels, 1, act=act)  # conv1 -> norm2 -> relu2
        self.conv2 = ConvNormAct(bottleneck_channels, growth_rate, 3, norm=None, act=None, bias=False)  # conv2
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv1(self.preact(x))  # (B, C, H, W) -> (B, 4k, H, W)
        new = self.dropout(self.conv2(new))  # -> (B, k, H, W)
        return torch.cat([x, new], dim=1)  # -> (B, C + k, H, W)


class DenseTransition(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, act: Callable[[], nn.Module] | None = nn.ReLU) -> None:
        super().__init__()
        self.preact = PreActivation(in_channels, act)
        self.conv = ConvNormAct(in_channels, out_channels, 1, norm=None, act=None, bias=False)
        self.pool = nn.AvgPool2d(2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.preact(x)))  # (B, C, H, W) -> (B, theta*C, H/2, W/2)
