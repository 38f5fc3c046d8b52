"""ShuffleNet V2 unit (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018, Sec. 3 and Fig. 3(c)(d)).

    stride 1:  split C -> (C/2 kept, C/2 branch);  branch: 1x1 -> BN -> ReLU -> 3x3 dw -> BN -> 1x1 -> BN -> ReLU
               concat(kept, branch)                                     (Fig. 3(c))
    stride 2:  no split;  left: 3x3 dw /2 -> BN -> 1x1 -> BN -> ReLU;  right: the branch above with a /2 dw
               concat(left, right)                                      (Fig. 3(d))

Semantics of the authors' released code (megvii-model/ShuffleNet-Series, ShuffleNetV2/blocks.py), so
its checkpoints map one to one:

* the "concat -> channel shuffle -> channel split" of Sec. 3 is merged into one op at the *start* of
  a stride-1 unit: a shuffle with 2 groups followed by a split into halves is exactly taking the even
  channels (kept) and the odd channels (branch) of the unshuffled concat;
* the branch width is ``out_channels // 2`` and the branch produces ``out - kept`` channels; in a
  stride-2 unit the left branch keeps the input width, so the right one produces ``out - in``
  (torchvision instead gives both branches ``out // 2``: the same layers everywhere except in the
  network's first unit, e.g. 24 -> 116 at 1.0x, where the released layout has 1156 more weights).

``layout="torchvision"`` is torchvision's ``InvertedResidual`` (``models/shufflenetv2.py``) for its
checkpoints: a stride-1 unit splits into the first and second half (``chunk``), both stride-2 branches
give ``out // 2``, and the shuffle (2 groups) comes at the *end* of every unit. The two layouts hold
the same operations but order channels differently, so one's weights are not the other's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct
from ..spec import OMIT_DEFAULT, check, check_choice
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock

__all__ = ["ShuffleNetV2UnitSpec", "ShuffleNetV2Unit"]

LAYOUTS = ("megvii", "torchvision")


@dataclass(frozen=True, kw_only=True)
class ShuffleNetV2UnitSpec(BlockSpec):
    kind: ClassVar[str] = "shufflenet_v2_unit"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    stride: int = 1
    kernel_size: int = 3
    layout: str = field(default="megvii", metadata={OMIT_DEFAULT: True})  # or "torchvision" (module docstring)

    def validate(self) -> None:
        super().validate()
        check_choice(self, "kernel_size", (3, 5, 7))
        check_choice(self, "layout", LAYOUTS)
        check(self, "out_channels", self.out_channels % 2 == 0, "even (the unit concatenates two halves)")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=out // 2)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        out = widths.out_channels
        if self.stride == 1 and in_channels % 2:
            raise ValueError(
                f"ShuffleNetV2UnitSpec with stride 1 splits its input in two halves, so in_channels must be even, got {in_channels}"
            )
        kept = in_channels // 2 if self.stride == 1 else in_channels
        if self.layout == "torchvision" and self.stride == 2:
            kept = out // 2  # both branches give half the output
        if out <= kept:
            raise ValueError(
                f"ShuffleNetV2UnitSpec.out_channels must exceed the {kept} channels the unit passes through "
                f"({'half the input' if self.stride == 1 else 'the left branch'}), got {in_channels} -> {out}"
            )

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ShuffleNetV2Unit(
            block.in_channels, block.out_channels, block.mid_channels, kernel_size=self.kernel_size, stride=self.stride,
            layout=self.layout,
        )


class ShuffleNetV2Unit(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, mid_channels: int, kernel_size: int = 3, stride: int = 1, layout: str = "megvii"
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleNetV2Unit stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels % 2:
            raise ValueError(f"ShuffleNetV2Unit with stride 1 needs an even in_channels, got {in_channels}")
        self.stride, self.torchvision_layout = stride, layout == "torchvision"
        branch_in = in_channels // 2 if stride == 1 else in_channels
        kept = branch_in  # channels the left side passes on (identity half, or the left branch)
        if self.torchvision_layout and stride == 2:
            kept = out_channels // 2
        self.branch = nn.Sequential(
            ConvNormAct(branch_in, mid_channels, 1),
            ConvNormAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=None),
            ConvNormAct(mid_channels, out_channels - kept, 1),
        )
        if stride == 2:
            self.left = nn.Sequential(
                ConvNormAct(in_channels, in_channels, kernel_size, stride, groups=in_channels, act=None),
                ConvNormAct(in_channels, kept, 1),
            )
        else:
            self.left = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.torchvision_layout:
            kept, x = x.chunk(2, dim=1) if self.stride == 1 else (self.left(x), x)
            out = torch.cat((kept, self.branch(x)), dim=1)  # (B, C', H/s, W/s)
            n, c, h, w = out.shape  # channel shuffle, 2 groups: interleave the halves
            return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        if self.stride == 1:  # shuffle + split of the released code: even channels kept, odd ones to the branch
            kept, x = x[:, 0::2], x[:, 1::2]  # (B, C, H, W) -> 2 x (B, C/2, H, W)
        else:
            kept = self.left(x)  # (B, C, H, W) -> (B, C, H/2, W/2)
        return torch.cat((kept, self.branch(x)), dim=1)  # -> (B, C', H/s, W/s)
