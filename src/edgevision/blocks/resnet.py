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

Two options of the bottleneck serve the Caffe-era releases built on it:

* ``stride_on="reduce"`` puts the stride on the first 1x1 conv, as the original ResNet Caffe
  release and the SENet release (``SE-ResNet-50.prototxt``) do ("ResNet v1"); the default
  ``"spatial"`` is torchvision's v1.5. Same parameters, fewer MACs (the 3x3 runs at H/s).
* ``se_reduction=r`` adds squeeze-and-excitation (Hu et al., "Squeeze-and-Excitation Networks",
  CVPR 2018, Fig. 3 "SE-ResNet module") on the residual branch after the last BN, before the
  addition: global pool -> fc C -> C/r (bias) -> ReLU -> fc C/r -> C (bias) -> sigmoid -> scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ConvNormAct, SqueezeExcite, get_activation
from ..spec import check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide, keeps_shape

__all__ = [
    "ResNetBasicSpec",
    "ResNetBottleneckSpec",
    "ResNetBasicBlock",
    "ResNetBottleneck",
    "projection_shortcut",
    "STRIDE_POSITIONS",
]

# where a strided bottleneck downsamples: the 3x3 conv (torchvision, "v1.5") or the first 1x1 (Caffe, "v1")
STRIDE_POSITIONS = ("spatial", "reduce")


@dataclass(frozen=True, kw_only=True)
class ResNetBasicSpec(BlockSpec):
    """Two 3x3 convs (ResNet-18/34). Both convs are ``out_channels`` wide."""

    kind: ClassVar[str] = "resnet_basic"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    stride: int = 1
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_activation(self)

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ResNetBasicBlock(
            block.in_channels, block.out_channels, self.stride, act=get_activation(self.activation), identity_shortcut=block.identity_shortcut
        )


@dataclass(frozen=True, kw_only=True)
class ResNetBottleneckSpec(BlockSpec):
    """1x1 -> 3x3 -> 1x1 (ResNet-50+; ResNeXt with ``groups``; Wide ResNet with a wider ``mid_channels``;
    SE-ResNet with ``se_reduction``)."""

    kind: ClassVar[str] = "resnet_bottleneck"
    supports_dilation: ClassVar[bool] = True

    out_channels: int  # block output width: 4x mid_channels in ResNet-50
    mid_channels: int  # bottleneck width: the 1x1 reduce and the 3x3 conv
    stride: int = 1
    groups: int = 1  # cardinality of the 3x3 conv (ResNeXt's C)
    activation: str = "relu"
    stride_on: str = "spatial"  # "spatial": the 3x3 conv (torchvision v1.5); "reduce": the first 1x1 (Caffe v1)
    se_reduction: int | None = None  # SE ratio r on the residual branch (SENet: 16); None: no SE

    def validate(self) -> None:
        super().validate()
        check_positive(self, "mid_channels", "groups", "se_reduction")
        check(self, "mid_channels", self.mid_channels % self.groups == 0, f"divisible by groups={self.groups}")
        check_activation(self)
        check_choice(self, "stride_on", STRIDE_POSITIONS)
        if self.se_reduction is not None:
            divides = self.out_channels % self.se_reduction == 0
            check(self, "se_reduction", divides, f"a divisor of out_channels={self.out_channels}")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out_channels = scale(self.out_channels)
        se_channels = None if self.se_reduction is None else max(1, out_channels // self.se_reduction)  # C / r
        return BlockWidths(out_channels=out_channels, mid_channels=scale(self.mid_channels), se_channels=se_channels)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "mid_channels", widths.mid_channels)

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ResNetBottleneck(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            self.stride,
            groups=self.groups,
            act=get_activation(self.activation),
            stride_on=self.stride_on,
            se_channels=block.se_channels,
            identity_shortcut=block.identity_shortcut,
        )


def projection_shortcut(in_channels: int, out_channels: int, stride: int, identity: bool | None = None) -> nn.Module:
    """Identity, else 1x1 conv (stride) + BN (He et al. 2016, option B).

    ``identity`` is the resolved block's ``identity_shortcut``; None (a module built by hand, outside
    a spec) means "when the shape is kept", the rule of every ResNet-style spec.
    """
    if identity is None:
        identity = stride == 1 and in_channels == out_channels
    if identity:
        return nn.Identity()
    return ConvNormAct(in_channels, out_channels, 1, stride, act=None)


class ResNetBasicBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        identity_shortcut: bool | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride, act=act)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, act=None)
        self.shortcut = projection_shortcut(in_channels, out_channels, stride, identity_shortcut)
        self.act = act() if act is not None else nn.Identity()

    @property
    def last_norm(self) -> nn.Module:
        return self.conv2.norm

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # every block, projection shortcuts included (Goyal et al. 2017; torchvision zero_init_residual)
        return init_last_norm(self.last_norm, zero_init_last)

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
        stride_on: str = "spatial",
        se_channels: int | None = None,
        identity_shortcut: bool | None = None,
    ) -> None:
        """``spatial_conv`` replaces the 3x3 conv (mid -> mid, stride ``stride``), e.g. an SK conv.

        ``stride_on="reduce"`` moves the stride to ``conv1`` (Caffe "v1"; not with ``spatial_conv``);
        ``se_channels`` adds an SE module of that reduced width after ``conv3``.
        """
        super().__init__()
        if stride_on not in STRIDE_POSITIONS:
            raise ValueError(f"ResNetBottleneck stride_on must be one of {', '.join(STRIDE_POSITIONS)}, got {stride_on!r}")
        if stride_on == "reduce" and spatial_conv is not None:
            raise ValueError(
                "ResNetBottleneck stride_on='reduce' needs the default 3x3 conv; spatial_conv carries its own stride"
            )
        reduce_stride, spatial_stride = (stride, 1) if stride_on == "reduce" else (1, stride)
        self.conv1 = ConvNormAct(in_channels, mid_channels, 1, reduce_stride, act=act)
        if spatial_conv is None:
            spatial_conv = ConvNormAct(mid_channels, mid_channels, 3, spatial_stride, groups=groups, act=act)
        self.conv2 = spatial_conv
        self.conv3 = ConvNormAct(mid_channels, out_channels, 1, act=None)
        self.se = SqueezeExcite(out_channels, se_channels) if se_channels is not None else nn.Identity()
        self.shortcut = projection_shortcut(in_channels, out_channels, stride, identity_shortcut)
        self.act = act() if act is not None else nn.Identity()

    @property
    def last_norm(self) -> nn.Module:
        return self.conv3.norm

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_last_norm(self.last_norm, zero_init_last)  # before SE, as torchvision's zero_init_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (B, C, H, W) -> (B, Cm, H, W)   (H/s with stride_on="reduce")
        out = self.conv2(out)  # 3x3 (or SK) conv -> (B, Cm, H/s, W/s)
        out = self.se(self.conv3(out))  # -> (B, C', H/s, W/s), SE-rescaled per channel where present
        return self.act(out + self.shortcut(x))
