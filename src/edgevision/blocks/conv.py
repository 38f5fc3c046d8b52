"""Plain layers as blocks: conv-norm-act (stems, last 1x1 convs) and max pooling (ResNet/ShuffleNet stems)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check, check_choice, check_positive
from .base import WIDTH_SCALING, BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide

__all__ = ["ConvNormActSpec", "MaxPoolSpec"]


@dataclass(frozen=True, kw_only=True)
class ConvNormActSpec(BlockSpec):
    """conv(k x k, stride, groups) -> BatchNorm (optional) -> activation."""

    kind: ClassVar[str] = "conv_norm_act"

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    groups: int = 1
    activation: str = "relu"
    norm: bool = True
    width_scaling: str = "scaled"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "kernel_size", "groups")
        check(self, "kernel_size", self.kernel_size % 2 == 1, "odd (same padding)")
        check(self, "out_channels", self.out_channels % self.groups == 0, f"divisible by groups={self.groups}")
        check_activation(self)
        check_choice(self, "width_scaling", WIDTH_SCALING)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=scale(self.out_channels, self.width_scaling))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "channels", in_channels, widths.out_channels)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ConvNormAct(
            block.in_channels,
            block.out_channels,
            self.kernel_size,
            self.stride,
            groups=self.groups,
            norm=nn.BatchNorm2d if self.norm else None,
            act=get_activation(self.activation),
        )


@dataclass(frozen=True, kw_only=True)
class MaxPoolSpec(BlockSpec):
    """k x k max pooling with 'same'-style padding k // 2 (ResNet and ShuffleNet stems: 3x3, stride 2)."""

    kind: ClassVar[str] = "max_pool"
    preserves_channels: ClassVar[bool] = True

    kernel_size: int = 3
    stride: int = 2

    def validate(self) -> None:
        super().validate()
        check(self, "kernel_size", self.kernel_size > 0 and self.kernel_size % 2 == 1, "a positive odd integer")

    def build(self, block: ResolvedBlock) -> nn.Module:
        return nn.MaxPool2d(self.kernel_size, self.stride, padding=self.kernel_size // 2)
