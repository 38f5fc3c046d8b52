"""Inverted residual with linear bottleneck (MobileNetV2, Sandler et al. 2018, Sec. 3.3 and Table 1),
with the optional squeeze-excite and hard-swish of MobileNetV3 (Howard et al. 2019, Sec. 5).

    1x1 expand (t*C) -> k x k depthwise (stride s) -> [SE] -> 1x1 linear project (C') [+ identity]

``expansion_ratio == 1`` drops the expand conv (MobileNetV2's first block, MobileNetV3's "ds"
block). Widths follow the reference code: expanded = make_divisible(C_in * t), SE reduced =
make_divisible(expanded * se_ratio), both with the network's channel divisor.

Options the searched networks need (all off by default, so earlier specs build unchanged):

* ``pointwise_groups`` (FBNet, Wu et al. 2019, Sec. 3.2 "group" option): both 1x1 convs are group
  convs, and a channel shuffle follows the expand position, as in the authors' ``IRFBlock``
  (mobile-vision), which shuffles even where e = 1 leaves no expand conv.
* ``conv_bias``: every conv carries a bias before its BatchNorm, as in the released FBNet
  checkpoints (mobile-vision arch defs pass ``{"bias": True}``); it only changes the train-form count.
* ``expand_at_ratio_one``: keep the 1x1 expand conv (+ BN + activation) where ``expansion_ratio == 1``
  (a C -> C conv), as timm's EfficientNet builder does for every ``ir`` block (its ``fbnetc_100``
  has three); the release networks drop it. Left out of the spec JSON at its default, so the
  existing specs' JSON, hashes and latency-table keys do not change.
* ``se_reduce_from="input"`` with ``se_round_to_divisor=False``: the squeeze-excite width is
  ``max(1, int(C_in * se_ratio))`` (MnasNet's TF code) instead of make_divisible(expanded * ratio).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ChannelShuffle, ConvNormAct, SqueezeExcite, get_activation
from ..spec import OMIT_DEFAULT, check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, keeps_shape

__all__ = ["InvertedResidualSpec", "InvertedResidual", "SE_REDUCE_FROM"]

#: what the squeeze-excite width is a fraction of: the expanded width (MobileNetV3) or the block input (MnasNet)
SE_REDUCE_FROM = ("expanded", "input")


@dataclass(frozen=True, kw_only=True)
class InvertedResidualSpec(BlockSpec):
    kind: ClassVar[str] = "inverted_residual"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    expansion_ratio: float = 6.0
    se_ratio: float = 0.0  # 0 = no squeeze-excite
    activation: str = "relu6"
    se_activation: str = "relu"
    se_gate: str = "hard_sigmoid"
    se_reduce_from: str = "expanded"
    se_round_to_divisor: bool = True  # False: int(width * se_ratio), at least 1 (MnasNet's TF code)
    pointwise_groups: int = 1  # FBNet "g2" blocks: grouped 1x1 convs + channel shuffle
    conv_bias: bool = False  # conv bias before BatchNorm (FBNet's released checkpoints)
    expand_at_ratio_one: bool = field(default=False, metadata={OMIT_DEFAULT: True})  # timm's e1 "ir" blocks

    def validate(self) -> None:
        super().validate()
        check_choice(self, "kernel_size", (3, 5, 7))
        check(self, "expansion_ratio", self.expansion_ratio >= 1.0, ">= 1 (an inverted bottleneck expands)")
        check(self, "se_ratio", 0.0 <= self.se_ratio < 1.0, "in [0, 1) (0 disables squeeze-excite)")
        check_activation(self)
        check_activation(self, "se_activation")
        check_activation(self, "se_gate")
        check_choice(self, "se_reduce_from", SE_REDUCE_FROM)
        check_positive(self, "out_channels", "pointwise_groups")

    @property
    def expands(self) -> bool:
        return self.expansion_ratio != 1.0 or self.expand_at_ratio_one

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        mid = scale.round(in_channels * self.expansion_ratio) if self.expands else in_channels
        se = None
        if self.se_ratio > 0:
            base = mid if self.se_reduce_from == "expanded" else in_channels
            se = scale.round(base * self.se_ratio) if self.se_round_to_divisor else max(1, int(base * self.se_ratio))
        return BlockWidths(out_channels=scale(self.out_channels), mid_channels=mid, se_channels=se)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        resolved = (in_channels, widths.mid_channels, widths.out_channels)
        if any(width % self.pointwise_groups for width in resolved):
            raise ValueError(
                f"InvertedResidualSpec.pointwise_groups={self.pointwise_groups} must divide the resolved input, expanded "
                f"and output widths ({' -> '.join(map(str, resolved))}); change pointwise_groups or the width multiplier"
            )

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return InvertedResidual(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            expand=self.expands,
            se_channels=block.se_channels,
            act=get_activation(self.activation),
            se_act=get_activation(self.se_activation) or nn.Identity,
            se_gate=get_activation(self.se_gate) or nn.Identity,
            pointwise_groups=self.pointwise_groups,
            conv_bias=self.conv_bias,
            identity_shortcut=block.identity_shortcut,
        )


class InvertedResidual(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expand: bool = True,
        se_channels: int | None = None,
        act: Callable[[], nn.Module] | None = nn.ReLU6,
        se_act: Callable[[], nn.Module] = nn.ReLU,
        se_gate: Callable[[], nn.Module] = nn.Hardsigmoid,
        pointwise_groups: int = 1,
        conv_bias: bool = False,
        identity_shortcut: bool | None = None,
    ) -> None:
        """``identity_shortcut``: the resolved block's; None (built by hand) means "when the shape is kept"."""
        super().__init__()
        if not expand and mid_channels != in_channels:
            raise ValueError(f"InvertedResidual without expansion needs mid_channels == in_channels, got {mid_channels} != {in_channels}")
        groups, bias = pointwise_groups, conv_bias
        self.use_residual = (stride == 1 and in_channels == out_channels) if identity_shortcut is None else identity_shortcut
        self.expand = ConvNormAct(in_channels, mid_channels, 1, groups=groups, act=act, bias=bias) if expand else nn.Identity()
        # FBNet's grouped blocks shuffle after the expand position, with or without an expand conv
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = ConvNormAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act, bias=bias)
        self.se = SqueezeExcite(mid_channels, se_channels, se_act, se_gate) if se_channels else nn.Identity()
        # linear bottleneck: no activation
        self.project = ConvNormAct(mid_channels, out_channels, 1, groups=groups, act=None, bias=bias)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_last_norm(self.project.norm, zero_init_last) if self.use_residual else ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.expand(x))  # (B, C, H, W) -> (B, tC, H, W)
        out = self.se(self.depthwise(out))  # -> (B, tC, H/s, W/s)
        out = self.project(out)  # -> (B, C', H/s, W/s)
        return out + x if self.use_residual else out
