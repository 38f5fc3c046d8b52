"""ShuffleNet unit (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", CVPR 2018, Sec. 3.1-3.2 and Fig. 2(b)(c)).

    1x1 group conv (g) -> BN -> ReLU -> 3x3 depthwise (stride s) -> BN -> channel shuffle
        -> 1x1 group conv (g) -> BN;   stride 1: ReLU(branch + x)
                                       stride 2: concat(avgpool3x3/2(x), ReLU(branch))

Layout follows the authors' released code (megvii-model/ShuffleNet-Series, ShuffleNetV1/blocks.py),
so its checkpoints map one to one: the shuffle sits after the depthwise conv (it commutes with a
per-channel op, so this is the paper's Fig. 2(b)), and it reshapes the channels to (C/g, g) before
transposing, the inverse of the paper's (g, C/g) order in Sec. 3.1; both send every group to every
group. The bottleneck width is out_channels / 4 (Sec. 3.3); the first unit of the network does not
group its first 1x1 conv (Table 1 note). A stride-2 unit's branch produces ``out - in`` channels so
that the concatenation with the pooled shortcut has ``out_channels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ConvNormAct, channel_shuffle
from ..spec import check, check_choice
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock

__all__ = ["ShuffleNetV1UnitSpec", "ShuffleNetV1Unit", "SHUFFLENET_V1_GROUPS"]

#: group counts of the paper's Table 1 / Table 2
SHUFFLENET_V1_GROUPS = (1, 2, 3, 4, 8)


@dataclass(frozen=True, kw_only=True)
class ShuffleNetV1UnitSpec(BlockSpec):
    kind: ClassVar[str] = "shufflenet_v1_unit"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    stride: int = 1
    groups: int = 3
    group_first_pointwise: bool = True  # False only for the network's first unit (Table 1 note)
    bottleneck_ratio: float = 0.25  # bottleneck width / output width (Sec. 3.3)
    kernel_size: int = 3

    def validate(self) -> None:
        super().validate()
        check_choice(self, "groups", SHUFFLENET_V1_GROUPS)
        check_choice(self, "kernel_size", (3, 5, 7))
        check(self, "bottleneck_ratio", 0.0 < self.bottleneck_ratio <= 1.0, "in (0, 1]")
        check(self, "out_channels", self.out_channels % self.groups == 0, f"divisible by groups={self.groups}")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=scale.round(out * self.bottleneck_ratio))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        out, mid = widths.out_channels, widths.mid_channels
        branch_out = out if self.stride == 1 else out - in_channels
        if self.stride == 1 and in_channels != out:
            raise ValueError(
                f"ShuffleNetV1UnitSpec with stride 1 adds its input, so it needs in_channels == out_channels, got {in_channels} -> {out}"
            )
        if branch_out <= 0:
            raise ValueError(
                f"ShuffleNetV1UnitSpec with stride 2 concatenates its input, so it needs out_channels > in_channels, "
                f"got {in_channels} -> {out}"
            )
        grouped = {"in": in_channels} if self.group_first_pointwise else {}
        grouped.update({"bottleneck": mid, "branch output (out - in)" if self.stride == 2 else "out": branch_out})
        for name, channels in grouped.items():
            if channels % self.groups:
                raise ValueError(
                    f"ShuffleNetV1UnitSpec.groups={self.groups} must divide the resolved {name} channels, got {channels} "
                    f"({in_channels} -> {out}, bottleneck {mid}); change groups or the widths"
                )

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return block.stride == 1  # stride 1 adds its input (check_widths: same width); stride 2 concatenates

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ShuffleNetV1Unit(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            groups=self.groups,
            group_first_pointwise=self.group_first_pointwise,
            kernel_size=self.kernel_size,
            stride=self.stride,
        )


class ShuffleNetV1Unit(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        groups: int = 3,
        group_first_pointwise: bool = True,
        kernel_size: int = 3,
        stride: int = 1,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleNetV1Unit stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"ShuffleNetV1Unit with stride 1 needs in_channels == out_channels, got {in_channels} != {out_channels}")
        branch_out = out_channels if stride == 1 else out_channels - in_channels
        self.groups = groups
        self.stride = stride
        self.pointwise1 = ConvNormAct(in_channels, mid_channels, 1, groups=groups if group_first_pointwise else 1)
        self.depthwise = ConvNormAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=None)
        self.pointwise2 = ConvNormAct(mid_channels, branch_out, 1, groups=groups, act=None)
        # 'same' padding: ceil(H / 2), like the depthwise conv; padded zeros count (PyTorch default, as released)
        self.shortcut = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU()

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_last_norm(self.pointwise2.norm, zero_init_last) if self.stride == 1 else ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.depthwise(self.pointwise1(x))  # (B, C, H, W) -> (B, M, H/s, W/s)
        if self.groups > 1:  # released order: (M/g, g) -> (g, M/g), i.e. the paper's shuffle with M/g "groups"
            out = channel_shuffle(out, out.shape[1] // self.groups)
        out = self.pointwise2(out)  # -> (B, C' - C or C', H/s, W/s)
        if self.stride == 1:
            return self.act(out + x)  # -> (B, C, H, W)
        return torch.cat((self.shortcut(x), self.act(out)), dim=1)  # -> (B, C', H/2, W/2)
