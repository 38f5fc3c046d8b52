"""The RegNet X block (Radosavovic et al., "Designing Network Design Spaces", CVPR 2020: the X block of the AnyNetX design space).

    1x1 conv (w_b) -> 3x3 group conv (w_b, group width g, stride s) -> 1x1 conv (w_out)  [+ shortcut] -> ReLU

with BN after every conv and ReLU after the first two: a ResNeXt-style bottleneck described by its
*group width* g instead of its number of groups. The bottleneck width is w_b = round(w_out * b);
every released RegNetX model has b = 1 (the bottleneck is as wide as the block). The number of
groups is w_b // min(w_b, g), as in pycls and in the G-Ghost RegNet release
(huawei-noah/Efficient-AI-Backbones ``g_ghost_regnet.py``): a block narrower than g has one group.

The module is :class:`~edgevision.blocks.resnet.ResNetBottleneck` (stride on the 3x3 conv,
projection shortcut 1x1 conv + BN where the shape changes), so there is one bottleneck in the
code base. G-Ghost RegNet (``blocks/g_ghost.py``) nests these blocks in its stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..layers import get_activation
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, keeps_shape
from .resnet import ResNetBottleneck

__all__ = ["RegNetXBlockSpec"]


@dataclass(frozen=True, kw_only=True)
class RegNetXBlockSpec(BlockSpec):
    """One X block: ``out_channels`` = w_out, ``group_width`` = g, ``bottleneck_ratio`` = b."""

    kind: ClassVar[str] = "regnetx_block"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    group_width: int
    stride: int = 1
    bottleneck_ratio: float = 1.0  # b: 1.0 in every released RegNetX model
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "group_width", "bottleneck_ratio")
        check_activation(self)

    def bottleneck_width(self, out_channels: int) -> int:
        """w_b = round(w_out * b) for a resolved output width (pycls ``int(round(w_out * bot_mul))``)."""
        return int(round(out_channels * self.bottleneck_ratio))

    def groups(self, bottleneck_width: int) -> int:
        """w_b // min(w_b, g): the 3x3 conv's number of groups."""
        return bottleneck_width // min(bottleneck_width, self.group_width)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=self.bottleneck_width(out))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        mid = widths.mid_channels
        group_width = min(mid, self.group_width)
        check(
            self,
            "group_width",
            mid % group_width == 0,
            f"a divisor of the resolved bottleneck width {mid} (change group_width or the width multiplier)",
        )

    def build(self, block: ResolvedBlock) -> nn.Module:
        mid = block.mid_channels if block.mid_channels is not None else self.bottleneck_width(block.out_channels)
        return ResNetBottleneck(
            block.in_channels,
            block.out_channels,
            mid,
            self.stride,
            groups=self.groups(mid),
            act=get_activation(self.activation),
            identity_shortcut=block.identity_shortcut,
        )

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)
