"""Plain layers as blocks: conv-norm-act (stems, last 1x1 convs) and max pooling (ResNet/ShuffleNet stems)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check, check_choice, check_positive
from .base import WIDTH_SCALING, BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide

__all__ = ["ConvNormActSpec", "MaxPoolSpec", "PADDINGS", "pooled_size"]

PADDINGS = ("same", "valid")


@dataclass(frozen=True, kw_only=True)
class ConvNormActSpec(BlockSpec):
    """conv(k x k, stride, groups) -> BatchNorm (optional) -> activation.

    ``padding="same"`` (k // 2, output ceil(H / stride)) is what almost every efficient network
    uses; ``"valid"`` (no padding, output floor((H - k) / stride) + 1) is the Inception v3/v4 and
    Xception stems' convention. Without a norm the conv carries a bias (VGG without BN).
    """

    kind: ClassVar[str] = "conv_norm_act"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    groups: int = 1
    activation: str = "relu"
    norm: bool = True
    width_scaling: str = "scaled"
    padding: str = "same"
    conv_bias: bool = False  # a conv bias before the norm too (FBNet's released models carry one)

    def validate(self) -> None:
        super().validate()
        check_positive(self, "kernel_size", "groups")
        check_choice(self, "padding", PADDINGS)
        if self.padding == "same":
            check(self, "kernel_size", self.kernel_size % 2 == 1, "odd with padding='same' (use padding='valid' for even kernels)")
        check(self, "out_channels", self.out_channels % self.groups == 0, f"divisible by groups={self.groups}")
        check_activation(self)
        check_choice(self, "width_scaling", WIDTH_SCALING)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=scale(self.out_channels, self.width_scaling))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "channels", in_channels, widths.out_channels)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return pooled_size(input_size, self.kernel_size, self.stride, self.padding)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ConvNormAct(
            block.in_channels,
            block.out_channels,
            self.kernel_size,
            self.stride,
            groups=self.groups,
            norm=nn.BatchNorm2d if self.norm else None,
            act=get_activation(self.activation),
            padding=None if self.padding == "same" else 0,
            bias=True if self.conv_bias else None,  # None: bias only without a norm
        )


@dataclass(frozen=True, kw_only=True)
class MaxPoolSpec(BlockSpec):
    """k x k max pooling.

    ``padding="same"`` pads k // 2 (ResNet and ShuffleNet stems: 3x3, stride 2); ``"valid"`` pads
    nothing (Inception v3/v4 stems); ``ceil_mode`` rounds the output size up (GoogLeNet, as in
    Caffe: floor would lose the last row).
    """

    kind: ClassVar[str] = "max_pool"
    supports_dilation: ClassVar[bool] = True
    preserves_channels: ClassVar[bool] = True

    kernel_size: int = 3
    stride: int = 2
    padding: str = "same"
    ceil_mode: bool = False

    def validate(self) -> None:
        super().validate()
        check_positive(self, "kernel_size")
        check_choice(self, "padding", PADDINGS)
        if self.padding == "same":
            check(self, "kernel_size", self.kernel_size % 2 == 1, "odd with padding='same' (use padding='valid' for even kernels)")

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return pooled_size(input_size, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def build(self, block: ResolvedBlock) -> nn.Module:
        padding = self.kernel_size // 2 if self.padding == "same" else 0
        return nn.MaxPool2d(self.kernel_size, self.stride, padding=padding, ceil_mode=self.ceil_mode)


def pooled_size(
    input_size: tuple[int, int], kernel_size: int, stride: int, padding: str, ceil_mode: bool = False
) -> tuple[int, int]:
    """Output H x W of a conv/pool window (PyTorch's formula, "same" = k // 2 on each side)."""
    pad = kernel_size // 2 if padding == "same" else 0

    def one(size: int) -> int:
        span = size + 2 * pad - kernel_size
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= size + pad:  # PyTorch: the last window must start inside the input
            out -= 1
        return out

    return (one(input_size[0]), one(input_size[1]))
