"""G-Ghost stage (Han et al., "GhostNets on Heterogeneous Devices via Cheap Operations", IJCV 2022, the G-Ghost stage).

The journal version of GhostNet has two designs. C-GhostNet, for CPUs and phones, is the Ghost
bottleneck network of the CVPR paper: ``blocks/ghost.py`` and ``models/ghostnet.py``
(``ghostnet_050/100/130``). G-GhostNet, for GPUs, applies the "cheap features" idea across a whole
*stage* instead of inside a block, because depthwise convs are slow on GPUs. For a stage of n blocks
with C output channels:

    x0    = first block (stride s)                                     (B, C, H/s, W/s)
    deep  = n - 2 blocks on the first C_raw channels of x0              (B, C_raw, H/s, W/s) each
    cheap = 1x1 conv + BN on the other C - C_raw channels of x0         ("cheap operation")
    mix   = global pool of [x0, deep_1 ... deep_(n-2)] -> 1x1 conv -> BN -> ReLU -> 1x1 conv -> BN
            (the "mix" of intermediate features that makes the cheap path input-dependent)
    out   = last block(concat[deep_(n-2), ReLU(cheap + mix)])           (B, C, H/s, W/s)

so n - 2 of the n blocks run on C_raw = floor(C (1 - lambda) / g') g' channels only (lambda = 0.5,
g' = int(0.75 g): the inner blocks' group width, as in the release). The stage needs cross-block
connections, so it is ONE block spec that holds its inner block specs (:class:`GGhostStageSpec`,
RegNet X blocks from ``blocks/regnet.py``); at block boundaries it exchanges NCHW tensors like any
other block. Layout, widths and the order of operations follow the authors' release
(huawei-noah/Efficient-AI-Backbones ``g_ghost_pytorch/g_ghost_regnet.py``, class ``Stage``).
The deploy form folds every BatchNorm into its conv; nothing else merges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct
from ..spec import check
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock
from .regnet import RegNetXBlockSpec

__all__ = ["GGhostStageSpec", "GGhostStage", "GGhostMix"]

INNER_GROUP_WIDTH_RATIO = 0.75  # g' = int(0.75 g): the release's group width of the inner (deep) blocks


@dataclass(frozen=True, kw_only=True)
class GGhostStageSpec(BlockSpec):
    """A whole G-Ghost stage: ``first`` (carries the stride), ``deep`` (on C_raw channels), ``last``.

    ``out_channels`` and ``stride`` are the first block's; ``deep`` blocks' ``out_channels`` is
    C_raw. Use :meth:`from_regnetx` for the release's rule for C_raw and the inner group width.
    """

    kind: ClassVar[str] = "g_ghost_stage"
    supports_dilation: ClassVar[bool] = True

    first: RegNetXBlockSpec
    deep: tuple[RegNetXBlockSpec, ...]
    last: RegNetXBlockSpec

    @property
    def out_channels(self) -> int:
        return self.first.out_channels

    @property
    def stride(self) -> int:
        return self.first.stride

    @property
    def depth(self) -> int:
        """n: blocks in the stage (first + deep + last)."""
        return len(self.deep) + 2

    @classmethod
    def from_regnetx(
        cls, out_channels: int, depth: int, group_width: int, stride: int = 2, cheap_ratio: float = 0.5
    ) -> "GGhostStageSpec":
        """The release's stage: C_raw = int(C (1 - cheap_ratio) / g') g' with g' = int(0.75 g)."""
        if depth < 3:
            raise ValueError(f"GGhostStageSpec.from_regnetx depth must be >= 3 (first, deep, last blocks), got {depth}")
        if not 0.0 < cheap_ratio < 1.0:
            raise ValueError(f"GGhostStageSpec.from_regnetx cheap_ratio must be in (0, 1), got {cheap_ratio}")
        inner_group_width = int(group_width * INNER_GROUP_WIDTH_RATIO)
        raw = int(out_channels * (1 - cheap_ratio) / inner_group_width) * inner_group_width
        inner = RegNetXBlockSpec(out_channels=raw, group_width=inner_group_width)
        return cls(
            first=RegNetXBlockSpec(out_channels=out_channels, group_width=group_width, stride=stride),
            deep=(inner,) * (depth - 2),
            last=RegNetXBlockSpec(out_channels=out_channels, group_width=group_width),
        )

    def validate(self) -> None:
        super().validate()
        check(self, "deep", len(self.deep) >= 1, "at least one inner block (a G-Ghost stage has >= 3 blocks)")
        raw = self.deep[0].out_channels
        check(self, "deep", all(b.out_channels == raw for b in self.deep), "blocks of one width (C_raw)")
        check(self, "deep", all(b.stride == 1 for b in self.deep), "stride-1 blocks (the first block carries the stride)")
        check(
            self,
            "deep",
            raw < self.first.out_channels,
            f"narrower than the stage ({self.first.out_channels} channels): the rest are the cheap features",
        )
        check(self, "last", self.last.stride == 1, "a stride-1 block")
        check(
            self,
            "last",
            self.last.out_channels == self.first.out_channels,
            f"as wide as the first block ({self.first.out_channels} channels)",
        )

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = self.first.widths(in_channels, scale).out_channels
        raw = self.deep[0].widths(out, scale).out_channels
        return BlockWidths(out_channels=out, mid_channels=raw)  # mid = C_raw, the deep path's width

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        out, raw = widths.out_channels, widths.mid_channels
        if not 0 < raw < out:
            raise ValueError(
                f"GGhostStageSpec.deep width resolves to {raw} of {out} channels; it must leave cheap channels "
                "(change the deep blocks' out_channels or the width multiplier)"
            )
        for spec, width in ((self.first, out), *((inner, raw) for inner in dict.fromkeys(self.deep)), (self.last, out)):
            spec.check_widths(width, BlockWidths(out_channels=width, mid_channels=spec.bottleneck_width(width)))

    def build(self, block: ResolvedBlock) -> nn.Module:
        out, raw = block.out_channels, block.mid_channels
        inner_size = block.output_size
        first = self.first.build(_nested(block, self.first, block.in_channels, out, block.input_size))
        deep = [spec.build(_nested(block, spec, raw, raw, inner_size)) for spec in self.deep]
        last = self.last.build(_nested(block, self.last, out, out, inner_size))
        return GGhostStage(first, deep, last, out, raw)


def _nested(
    parent: ResolvedBlock, spec: RegNetXBlockSpec, in_channels: int, out_channels: int, input_size: tuple[int, int]
) -> ResolvedBlock:
    """The resolved record of a block inside a stage block (widths decided by the stage)."""
    return ResolvedBlock(
        section=parent.section,
        stage_index=parent.stage_index,
        block_index=parent.block_index,
        spec=spec,
        in_channels=in_channels,
        out_channels=out_channels,
        mid_channels=spec.bottleneck_width(out_channels),
        se_channels=None,
        stride=spec.stride,
        input_size=input_size,
        output_size=spec.output_size(input_size),
    )


class GGhostMix(nn.Module):
    """Global pool of every intermediate feature -> 1x1 conv -> BN -> ReLU -> 1x1 conv -> BN (release's ``merge``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduce = ConvNormAct(in_channels, out_channels, 1, act=nn.ReLU)
        self.expand = ConvNormAct(out_channels, out_channels, 1, act=None)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        # pooling each map and concatenating equals pooling the concatenation, without building it
        pooled = torch.cat([f.mean((2, 3), keepdim=True) for f in features], dim=1)  # (B, C + n' C_raw, 1, 1)
        return self.expand(self.reduce(pooled))  # -> (B, C - C_raw, 1, 1)


class GGhostStage(nn.Module):
    """first -> deep blocks on C_raw channels; cheap 1x1 on the rest + mix; concat -> last."""

    def __init__(self, first: nn.Module, deep: list[nn.Module], last: nn.Module, channels: int, raw_channels: int) -> None:
        super().__init__()
        cheap_channels = channels - raw_channels
        self.raw_channels = raw_channels
        self.first = first
        self.deep = nn.ModuleList(deep)
        self.cheap = ConvNormAct(cheap_channels, cheap_channels, 1, act=None)
        self.mix = GGhostMix(channels + raw_channels * len(deep), cheap_channels)
        self.cheap_act = nn.ReLU()
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.first(x)  # (B, C_in, H, W) -> (B, C, H/s, W/s)
        deep = x0[:, : self.raw_channels]  # (B, C_raw, H/s, W/s)
        features = [x0]
        for block in self.deep:
            deep = block(deep)
            features.append(deep)
        cheap = self.cheap(x0[:, self.raw_channels :]) + self.mix(features)  # (B, C - C_raw, H/s, W/s)
        return self.last(torch.cat([deep, self.cheap_act(cheap)], dim=1))  # -> (B, C, H/s, W/s)

