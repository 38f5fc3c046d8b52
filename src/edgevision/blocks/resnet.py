"""Residual blocks of ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
Sec. 3.3, Fig. 5 and Table 1).

    basic:       3x3 (stride s) -> 3x3                          [+ shortcut] -> ReLU
    bottleneck:  1x1 reduce -> 3x3 (stride s, groups) -> 1x1    [+ shortcut] -> ReLU

The shortcut is the identity when the shape is kept, otherwise a 1x1 conv (stride s) + BN
(the paper's option B). Module layout follows the reference PyTorch release (torchvision
``resnet.py``): the bottleneck puts its stride on the 3x3 conv, not on the first 1x1 as the
original Caffe release did. That is "ResNet v1.5", the model torchvision's published weights are.

The bottleneck names its inner width ``mid_channels`` directly, as the ResNeXt (Xie et al. 2017,
Table 1: "1x1, 128; 3x3, 128, C=32") and Wide ResNet tables print it; torchvision derives the
same number as ``int(planes * base_width / 64) * groups``.

The last norm of each residual branch is ``block.last_norm`` (``conv2.norm`` / ``conv3.norm``),
the one a zero-init training recipe (Goyal et al. 2017) sets to zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide

__all__ = [
    "ResNetBasicSpec",
    "ResNetBottleneckSpec",
    "ResNetBasicBlock",
    "ResNetBottleneck",
    "projection_shortcut",
]


@dataclass(frozen=True, kw_only=True)
class ResNetBasicSpec(BlockSpec):
    """Two 3x3 convs (ResNet-18/34). Both convs are ``out_channels`` wide."""

    kind: ClassVar[str] = "resnet_basic"

    out_channels: int
    stride: int = 1
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_activation(self)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ResNetBasicBlock(block.in_channels, block.out_channels, self.stride, act=get_activation(self.activation))


@dataclass(frozen=True, kw_only=True)
class ResNetBottleneckSpec(BlockSpec):
    """1x1 -> 3x3 -> 1x1 (ResNet-50+; ResNeXt with ``groups``; Wide ResNet with a wider ``mid_channels``)."""

    kind: ClassVar[str] = "resnet_bottleneck"

    out_channels: int  # block output width: 4x mid_channels in ResNet-50
    mid_channels: int  # bottleneck width: the 1x1 reduce and the 3x3 conv
    stride: int = 1
    groups: int = 1  # cardinality of the 3x3 conv (ResNeXt's C)
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "mid_channels", "groups")
        check(self, "mid_channels", self.mid_channels % self.groups == 0, f"divisible by groups={self.groups}")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=scale(self.out_channels), mid_channels=scale(self.mid_channels))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "mid_channels", widths.mid_channels)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ResNetBottleneck(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            self.stride,
            groups=self.groups,
            act=get_activation(self.activation),
        )


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when the shape is kept, else 1x1 conv (stride) + BN (He et al. 2016, option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvNormAct(in_channels, out_channels, 1, stride, act=None)


class ResNetBasicBlock(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, act: Callable[[], nn.Module] | None = nn.ReLU
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride, act=act)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, act=None)
        self.shortcut = projection_shortcut(in_channels, out_channels, stride)
        self.act = act() if act is not None else nn.Identity()

    @property
    def last_norm(self) -> nn.Module:
        return self.conv2.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))  # (B, C, H, W) -> (B, C', H/s, W/s)
        return self.act(out + self.shortcut(x))  # shortcut: (B, C, H, W) -> (B, C', H/s, W/s)


class ResNetBottleneck(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        stride: int = 1,
        groups: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        spatial_conv: nn.Module | None = None,
    ) -> None:
        """``spatial_conv`` replaces the 3x3 conv (mid -> mid, stride ``stride``), e.g. an SK conv."""
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, mid_channels, 1, act=act)
        # ResNet v1.5 (torchvision): the stride sits on the 3x3 conv, not on conv1 as in the Caffe release
        if spatial_conv is None:
            spatial_conv = ConvNormAct(mid_channels, mid_channels, 3, stride, groups=groups, act=act)
        self.conv2 = spatial_conv
        self.conv3 = ConvNormAct(mid_channels, out_channels, 1, act=None)
        self.shortcut = projection_shortcut(in_channels, out_channels, stride)
        self.act = act() if act is not None else nn.Identity()

    @property
    def last_norm(self) -> nn.Module:
        return self.conv3.norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, C, H, W) -> (B, Cm, H, W)
        out = self.conv2(out)  # 3x3 (or SK) conv -> (B, Cm, H/s, W/s)
        out = self.conv3(out)  # -> (B, C', H/s, W/s)
        return self.act(out + self.shortcut(x))
