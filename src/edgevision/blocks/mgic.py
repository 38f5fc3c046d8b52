"""Multigrid-in-channels block (Eliasof, Ephrath, Ruthotto and Treister, "MGIC: Multigrid-in-Channels
Neural Network Architectures", SIAM J. Sci. Comput. 2023, Sec. 3).

A residual stage whose convs are *grouped* (cheap, O(C) parameters) is coupled across groups by a
V-cycle over the channel dimension: channels are the "grid", and coarser grids have fewer
channels. One block at width C (the release's serial mode)::

    x_C                                                          (B, C, H, W)
      restrict:  x_{C/2} = R x_C               grouped 1x1 conv, C -> C/2, groups C / g
      coarse:    y_{C/2} = cycle(x_{C/2})      recurse while C/2 >= coarsest_channels, else a dense
                                               residual step relu(x + BN(conv(relu(BN(conv(x))))))
      correct:   z_C = x_C + BN(P (y_{C/2} - x_{C/2}))   grouped 1x1 prolongation (the FAS correction)
      smooth:    out = relu(z_C + BN(conv(relu(BN(conv(z_C))))))   grouped 3x3 convs, groups C / g

so each grouped conv sees groups of ``group_size`` channels and only the coarsest level is dense.
When the block changes width or stride, a connector first maps the input with a 3x3 conv of
``groups = C_in`` (stride s), BN and ReLU, as the authors' release does.

Layout follows the authors' ``resnetMG.py`` (BGUCompSci/MultigridInChannelsCNNs,
``MgBlockDwGroup`` with ``pwGroup=True, bottleneck=False, twoSided=False``, serial mode;
``group_size`` is their ``numberOfFixGroup`` and ``coarsest_channels`` their ``mgFcChannel``, 32 and
32 in their driver). Only the block is provided: the release's driver does not record the
ImageNet configurations, so no network is registered with published counts.
Deploy form: every BN folds into its conv (R has no BN), nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ConvNormAct
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ResolvedBlock, keeps_shape

__all__ = ["MGICBlockSpec", "MGICBlock", "MultigridCycle", "ResidualSmoother", "multigrid_levels"]


def multigrid_levels(channels: int, group_size: int, coarsest_channels: int) -> list[tuple[int, int]]:
    """(channels, groups) of every level that restricts, finest first; the coarse solve runs at the last C / 2.

    Raises ``ValueError`` when a level cannot be halved or split into its groups.
    """
    levels = []
    while True:
        groups = max(channels // group_size, 1)
        if channels % 2 or channels % groups or (channels // 2) % groups:
            raise ValueError(
                f"MGIC level of {channels} channels cannot be halved into {groups} groups of the same size "
                f"(group_size={group_size}); use widths that are multiples of group_size"
            )
        levels.append((channels, groups))
        if channels // 2 < coarsest_channels:
            return levels
        channels //= 2


@dataclass(frozen=True, kw_only=True)
class MGICBlockSpec(BlockSpec):
    """One multigrid-in-channels V-cycle of grouped residual steps (see the module docstring)."""

    kind: ClassVar[str] = "mgic_block"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    stride: int = 1
    group_size: int = 32  # channels per group of the grouped convs (the release's numberOfFixGroup)
    coarsest_channels: int = 32  # stop coarsening when C / 2 drops below this (the release's mgFcChannel)

    def validate(self) -> None:
        super().validate()
        check_positive(self, "group_size", "coarsest_channels")
        check(self, "group_size", self.group_size % 2 == 0, "even (each group is halved by the restriction)")

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        out = widths.out_channels
        if (self.stride != 1 or in_channels != out) and out % in_channels:
            raise ValueError(
                f"MGICBlockSpec connector is a 3x3 conv with groups = C_in, so out_channels ({out}) must be a "
                f"multiple of the input width ({in_channels})"
            )
        multigrid_levels(out, self.group_size, self.coarsest_channels)

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        # no connector conv: the V-cycle is a composition of residual steps on the input itself
        return keeps_shape(block)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return MGICBlock(
            block.in_channels, block.out_channels, self.stride, self.group_size, self.coarsest_channels, block.identity_shortcut
        )


class ResidualSmoother(nn.Module):
    """``relu(x + BN(conv3x3(relu(BN(conv3x3(x))))))`` with grouped convs (dense when groups=1)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, 3, groups=groups, act=nn.ReLU)
        self.conv2 = ConvNormAct(channels, channels, 3, groups=groups, act=None)
        self.act = nn.ReLU()

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_last_norm(self.conv2.norm, zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))  # (B, C, H, W) -> (B, C, H, W)


class MultigridCycle(nn.Module):
    """One V-cycle level: restrict, solve the coarse level (recursively), correct, smooth."""

    def __init__(self, channels: int, group_size: int, coarsest_channels: int) -> None:
        super().__init__()
        coarse = channels // 2
        groups = max(channels // group_size, 1)
        self.restrict = nn.Conv2d(channels, coarse, 1, groups=groups, bias=False)
        self.coarse: nn.Module = (
            ResidualSmoother(coarse, groups=1)  # the coarsest level is dense (the release's FC step)
            if coarse < coarsest_channels
            else MultigridCycle(coarse, group_size, coarsest_channels)
        )
        self.prolong = ConvNormAct(coarse, channels, 1, groups=groups, act=None)
        self.smooth = ResidualSmoother(channels, groups)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_last_norm(self.prolong.norm, zero_init_last)  # the coarse-grid correction, a residual branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse_in = self.restrict(x)  # (B, C, H, W) -> (B, C/2, H, W)
        coarse_out = self.coarse(coarse_in)  # -> (B, C/2, H, W)
        corrected = x + self.prolong(coarse_out - coarse_in)  # -> (B, C, H, W)
        return self.smooth(corrected)


class MGICBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        group_size: int = 32,
        coarsest_channels: int = 32,
        identity_shortcut: bool | None = None,
    ) -> None:
        super().__init__()
        multigrid_levels(out_channels, group_size, coarsest_channels)  # fail early with the reason
        if identity_shortcut is None:  # built by hand: the spec's rule
            identity_shortcut = stride == 1 and in_channels == out_channels
        self.connector: nn.Module = nn.Identity()
        if not identity_shortcut:  # the release's shortcut: 3x3, groups = C_in, BN, ReLU
            self.connector = ConvNormAct(in_channels, out_channels, 3, stride, groups=in_channels, act=nn.ReLU)
        self.cycle = MultigridCycle(out_channels, group_size, coarsest_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cycle(self.connector(x))  # (B, C, H, W) -> (B, C', H/s, W/s) -> (B, C', H/s, W/s)
