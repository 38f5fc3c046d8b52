"""MobileOne layer (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023,
Sec. 3.1 and Fig. 3).

One spec is one ``MobileOneBlock`` of the authors' code (apple/ml-mobileone): a depthwise 3x3 or a
pointwise 1x1 layer with ``num_conv_branches`` over-parameterized conv-BN branches, a 1x1 "scale"
conv-BN branch (k > 1 only) and an identity BatchNorm (C_in == C_out, stride 1), summed, then
[squeeze-excite] and ReLU. The paper's "MobileOne block" (a row of Table 7) is a depthwise layer
followed by a pointwise layer, i.e. two of these specs; keeping them apart gives each its own
SE width, as in the authors' code (``SEBlock(out_channels)``, reduced width int(C / 16)).

Deploy form: each layer is ONE conv with bias (depthwise 3x3 or dense 1x1), then [SE] and ReLU.
The module is :class:`~edgevision.blocks.repvgg.RepConv`, shared with RepVGG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..layers import get_activation
from ..spec import check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation
from .repvgg import RepConv

__all__ = ["MobileOneConvSpec"]


@dataclass(frozen=True, kw_only=True)
class MobileOneConvSpec(BlockSpec):
    kind: ClassVar[str] = "mobileone_conv"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    depthwise: bool = False  # groups = channels (then out_channels must equal the input width)
    num_conv_branches: int = 1  # the paper's over-parameterization factor k (Table 7: 4 for S0, 1 for S1-S4)
    se_ratio: float = 0.0  # 0 = no squeeze-excite; MobileOne-S4 uses 1/16
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_choice(self, "kernel_size", (1, 3, 5, 7))
        check_positive(self, "num_conv_branches")
        check(self, "se_ratio", 0.0 <= self.se_ratio < 1.0, "in [0, 1) (0 disables squeeze-excite)")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        # the authors' SEBlock: reduced width int(C * rd_ratio), rounded down
        se = max(1, int(out * self.se_ratio)) if self.se_ratio > 0 else None
        return BlockWidths(out_channels=out, se_channels=se)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        if self.depthwise and widths.out_channels != in_channels:
            raise ValueError(
                f"MobileOneConvSpec.depthwise=True keeps the width, but resolves {in_channels} -> {widths.out_channels}; "
                f"set out_channels to the input width"
            )

    def build(self, block: ResolvedBlock) -> nn.Module:
        return RepConv(
            block.in_channels,
            block.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            groups=block.in_channels if self.depthwise else 1,
            num_conv_branches=self.num_conv_branches,
            se_channels=block.se_channels,
            act=get_activation(self.activation),
        )
