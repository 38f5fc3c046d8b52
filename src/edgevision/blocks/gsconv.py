"""GSConv and the VoV-GSCSP slim-neck block (Li et al., "Slim-neck by GSConv: A lightweight-design for
real-time detector architectures", 2022, Sec. 3).

GSConv: half the output channels come from a standard conv, the other half from a cheap
depthwise conv of that half; a two-group channel shuffle interleaves them, so the dense conv's
information reaches every channel pair::

    x1 = conv_kxk(x)                   (B, C, H, W)    -> (B, C'/2, H/s, W/s)   conv-BN-act, groups g
    x2 = dwconv_5x5(x1)                                -> (B, C'/2, H/s, W/s)   depthwise conv-BN-act
    out = shuffle(concat(x1, x2), 2)                   -> (B, C', H/s, W/s)     channel 2i = x1[i], 2i+1 = x2[i]

VoV-GSCSP, a one-shot-aggregation CSP block of GS bottlenecks::

    y = conv_1x1(x)                    the cross-stage partial path, C_h = int(C' * e) channels
    z = GSBottleneck^n(conv_1x1(x))    GSBottleneck: GSConv 1x1 (C_h -> C_b) -> GSConv 3x3 (C_b -> C_h, no act)
                                       + 1x1 conv-BN shortcut; C_b = int(C_h * bottleneck_expansion)
    out = conv_1x1(concat(y, z))       -> (B, C', H, W)

Layout and widths follow the authors' ``models_inPaper.py`` (AlanLi1997/slim-neck-by-gsconv):
``GSConv`` with the two-group interleaving shuffle (also their YOLOv8 release's), ``GSBottleneck(c_, c_)``
whose inner width is ``c_ // 2`` (``bottleneck_expansion=0.5``), ``VoVGSCSP`` with one bottleneck.
Their ``Conv`` there is conv-BN-Mish, the YOLO releases' conv-BN-SiLU (``activation``; "silu" by
default, Mish is not in our activation vocabulary). Later releases stack ``n`` bottlenecks of inner
width ``c_`` (``num_bottlenecks=n, bottleneck_expansion=1.0``). The file's ``VoVGSCSP.res`` (a 3x3
conv-BN that ``forward`` never calls) is not built, so our module has 9 C_h^2 + 2 C_h fewer
parameters than that class (same outputs). Earlier releases shuffled even/odd channels instead;
any fixed permutation carries the same information, the interleave is what the paper draws.
These are neck blocks for the detection work; they exchange NCHW tensors like every block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, channel_shuffle, get_activation
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide

__all__ = ["GSConvSpec", "VoVGSCSPSpec", "GSConv", "GSBottleneck", "VoVGSCSP"]

# the authors' GSConv: the cheap half is a 5x5 depthwise conv (``Conv(c_, c_, 5, 1, None, c_, act)``)
GSCONV_DEPTHWISE_KERNEL = 5


@dataclass(frozen=True, kw_only=True)
class GSConvSpec(BlockSpec):
    """A GSConv: dense k x k conv to C'/2 channels, 5x5 depthwise to the other C'/2, 2-group shuffle."""

    kind: ClassVar[str] = "gsconv"
    supports_dilation: ClassVar[bool] = True

    out_channels: int  # even: half dense, half depthwise
    kernel_size: int = 1
    stride: int = 1
    groups: int = 1  # groups of the dense conv
    activation: str = "silu"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "kernel_size", "groups")
        check(self, "kernel_size", self.kernel_size % 2 == 1, "odd ('same' padding)")
        check(self, "out_channels", self.out_channels % 2 == 0, "even (half from the dense conv, half from the depthwise conv)")
        check_activation(self)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        if widths.out_channels % 2:
            raise ValueError(
                f"GSConvSpec.out_channels resolves to {widths.out_channels}, which is odd; "
                "use a width multiplier that keeps it even"
            )
        check_groups_divide(self, "channels", in_channels, widths.out_channels // 2)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return GSConv(
            block.in_channels, block.out_channels, self.kernel_size, self.stride, self.groups, act=get_activation(self.activation)
        )


@dataclass(frozen=True, kw_only=True)
class VoVGSCSPSpec(BlockSpec):
    """VoV-GSCSP: two 1x1 paths, ``num_bottlenecks`` GS bottlenecks on one, concat, 1x1 fuse (stride 1)."""

    kind: ClassVar[str] = "vov_gscsp"
    supports_dilation: ClassVar[bool] = True
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)

    out_channels: int
    stride: int = 1
    num_bottlenecks: int = 1  # the release's n (YOLO depth-scaled); models_inPaper.py builds one
    expansion: float = 0.5  # hidden width C_h = int(out_channels * expansion), the release's e
    bottleneck_expansion: float = 0.5  # GS bottleneck inner width C_b = int(C_h * this): c2 // 2 in models_inPaper.py
    activation: str = "silu"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "num_bottlenecks", "expansion", "bottleneck_expansion")
        check_activation(self)

    def bottleneck_channels(self, hidden_channels: int) -> int:
        return int(hidden_channels * self.bottleneck_expansion)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out_channels = scale(self.out_channels)
        return BlockWidths(out_channels=out_channels, mid_channels=int(out_channels * self.expansion))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        hidden, inner = widths.mid_channels, self.bottleneck_channels(widths.mid_channels)
        if hidden < 2 or hidden % 2:
            raise ValueError(
                f"VoVGSCSPSpec hidden width int(out_channels * expansion) = {hidden} must be even and >= 2 "
                f"(its GSConvs split it in halves); change out_channels or expansion={self.expansion}"
            )
        if inner < 2 or inner % 2:
            raise ValueError(
                f"VoVGSCSPSpec bottleneck width int({hidden} * bottleneck_expansion) = {inner} must be even and >= 2; "
                f"change bottleneck_expansion={self.bottleneck_expansion} or the widths"
            )

    def build(self, block: ResolvedBlock) -> nn.Module:
        return VoVGSCSP(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            self.bottleneck_channels(block.mid_channels),
            self.num_bottlenecks,
            act=get_activation(self.activation),
        )


class GSConv(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: Callable[[], nn.Module] | None = nn.SiLU,
    ) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"GSConv out_channels must be even, got {out_channels}")
        half = out_channels // 2
        self.dense = ConvNormAct(in_channels, half, kernel_size, stride, groups=groups, act=act)
        self.cheap = ConvNormAct(half, half, GSCONV_DEPTHWISE_KERNEL, groups=half, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = self.dense(x)  # (B, C, H, W) -> (B, C'/2, H/s, W/s)
        both = torch.cat((dense, self.cheap(dense)), dim=1)  # -> (B, C', H/s, W/s)
        return channel_shuffle(both, 2)  # interleave: channel 2i = dense[i], 2i + 1 = cheap[i]


class GSBottleneck(nn.Module):
    """GSConv 1x1 -> GSConv 3x3 (no activation), plus a 1x1 conv-BN shortcut (the release's ``GSBottleneck``)."""

    def __init__(
        self, in_channels: int, out_channels: int, mid_channels: int, act: Callable[[], nn.Module] | None = nn.SiLU
    ) -> None:
        super().__init__()
        self.gsconv1 = GSConv(in_channels, mid_channels, 1, act=act)
        self.gsconv2 = GSConv(mid_channels, out_channels, 3, act=None)
        self.shortcut = ConvNormAct(in_channels, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gsconv2(self.gsconv1(x)) + self.shortcut(x)  # (B, C, H, W) -> (B, C', H, W)


class VoVGSCSP(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int,
        bottleneck_channels: int,
        num_bottlenecks: int = 1,
        act: Callable[[], nn.Module] | None = nn.SiLU,
    ) -> None:
        super().__init__()
        self.reduce = ConvNormAct(in_channels, hidden_channels, 1, act=act)  # release: cv1
        self.partial = ConvNormAct(in_channels, hidden_channels, 1, act=act)  # release: cv2
        self.bottlenecks = nn.Sequential(  # release: gsb
            *(GSBottleneck(hidden_channels, hidden_channels, bottleneck_channels, act=act) for _ in range(num_bottlenecks))
        )
        self.fuse = ConvNormAct(2 * hidden_channels, out_channels, 1, act=act)  # release: cv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.bottlenecks(self.reduce(x))  # (B, C, H, W) -> (B, C_h, H, W)
        partial = self.partial(x)  # -> (B, C_h, H, W)
        return self.fuse(torch.cat((partial, deep), dim=1))  # (B, 2 C_h, H, W) -> (B, C', H, W)
