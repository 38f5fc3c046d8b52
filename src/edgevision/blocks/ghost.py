"""Ghost module and Ghost bottleneck (Han et al., "GhostNet: More Features from Cheap Operations",
CVPR 2020, Sec. 3.1 and Sec. 3.2 / Fig. 3).

Ghost module: a 1x1 "primary" conv makes ``ceil(C / ratio)`` intrinsic maps; a cheap depthwise
``d x d`` conv makes ``ratio - 1`` "ghost" maps from each; both are concatenated and sliced to C.

    ghost module (expand, ReLU) -> [k x k depthwise, stride 2] -> [SE] -> ghost module (linear) + shortcut

The shortcut is the identity when the shape is kept, else a k x k depthwise conv (stride s) and a
1x1 conv, both with BatchNorm and no activation, as in the authors' PyTorch code
(huawei-noah/Efficient-AI-Backbones). The bottleneck also serves RepGhost (``blocks/repghost.py``),
which swaps the module type.

Widths follow the reference code: the expanded width is the table's absolute ``#exp`` value scaled
as make_divisible(exp * multiplier, divisor); the SE width is make_divisible(expanded * se_ratio, divisor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ConvNormAct, SqueezeExcite, get_activation
from ..spec import check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, keeps_shape

__all__ = ["BaseGhostBottleneckSpec", "GhostBottleneckSpec", "GhostModule", "GhostBottleneck"]


@dataclass(frozen=True, kw_only=True)
class BaseGhostBottleneckSpec(BlockSpec):
    """What the Ghost and RepGhost bottleneck specs share; subclasses name the feature module."""

    out_channels: int
    mid_channels: int  # expanded width at multiplier 1.0 (the table's "#exp" / "#mid"), not a ratio
    kernel_size: int = 3  # depthwise conv of the stride-2 path and of the shortcut
    stride: int = 1
    se_ratio: float = 0.0  # 0 = no squeeze-excite
    activation: str = "relu"
    se_activation: str = "relu"
    se_gate: str = "hard_sigmoid"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "mid_channels")
        check_choice(self, "kernel_size", (3, 5, 7))
        check(self, "se_ratio", 0.0 <= self.se_ratio < 1.0, "in [0, 1) (0 disables squeeze-excite)")
        check_activation(self)
        check_activation(self, "se_activation")
        check_activation(self, "se_gate")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        mid = scale(self.mid_channels)
        se = scale.round(mid * self.se_ratio) if self.se_ratio > 0 else None
        return BlockWidths(out_channels=scale(self.out_channels), mid_channels=mid, se_channels=se)

    def feature_module(self) -> Callable[..., nn.Module]:
        """Constructor ``(in_channels, out_channels, act=...)`` of the bottleneck's two feature modules."""
        raise NotImplementedError(f"{type(self).__name__} does not implement feature_module()")

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return GhostBottleneck(
            block.in_channels,
            block.mid_channels,
            block.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            se_channels=block.se_channels,
            act=get_activation(self.activation),
            se_act=get_activation(self.se_activation) or nn.Identity,
            se_gate=get_activation(self.se_gate) or nn.Identity,
            module=self.feature_module(),
            identity_shortcut=block.identity_shortcut,
        )


@dataclass(frozen=True, kw_only=True)
class GhostBottleneckSpec(BaseGhostBottleneckSpec):
    kind: ClassVar[str] = "ghost_bottleneck"
    supports_dilation: ClassVar[bool] = True

    ghost_ratio: int = 2  # s in the paper: output maps per intrinsic map
    ghost_kernel_size: int = 3  # d in the paper: the cheap depthwise conv

    def validate(self) -> None:
        super().validate()
        check(self, "ghost_ratio", self.ghost_ratio >= 2, ">= 2 (ratio 1 is a plain 1x1 conv)")
        check_choice(self, "ghost_kernel_size", (1, 3, 5, 7))

    def feature_module(self) -> Callable[..., nn.Module]:
        return partial(GhostModule, ratio=self.ghost_ratio, kernel_size=self.ghost_kernel_size)


class GhostModule(nn.Module):
    """1x1 primary conv -> cheap depthwise conv; ``[primary, cheap]`` concatenated, sliced to ``out_channels``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: int = 2,
        kernel_size: int = 3,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        if ratio < 2:
            raise ValueError(f"GhostModule ratio must be >= 2, got {ratio}")
        self.out_channels = out_channels
        intrinsic = math.ceil(out_channels / ratio)
        self.primary = ConvNormAct(in_channels, intrinsic, 1, act=act)
        self.cheap = ConvNormAct(intrinsic, intrinsic * (ratio - 1), kernel_size, groups=intrinsic, act=act)

    def output_parts(self) -> int:
        """Width-surgery protocol: 2 when the output is exactly [primary, cheap] (ratio 2, even width), else 0.

        Then output channel u (primary) and p + u (its ghost, the cheap depthwise conv of u) are one
        unit: a segmented map of two parts, pruned alike (``edgevision.prune.groups.TensorDim.segments``).
        A wider ratio interleaves s - 1 ghosts per unit and an odd width slices the last ghost off.
        """
        intrinsic = self.primary.conv.out_channels
        return 2 if self.cheap.conv.out_channels == intrinsic and self.out_channels == 2 * intrinsic else 0

    def width_dims(self, prefix: str = "") -> dict:
        """``{"out": dims}``: the output's tensor dims as (key, dim, segments, segment), or {} (not segmentable)."""
        if not self.output_parts():
            return {}
        dims = [(f"{prefix}{part}.{key}", 0, 2, segment) for segment, part in enumerate(("primary", "cheap"))
                for key, tensor in getattr(self, part).state_dict().items() if tensor.dim() > 0]
        return {"out": tuple(dims)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        intrinsic = self.primary(x)  # (B, C_in, H, W) -> (B, ceil(C/s), H, W)
        ghosts = self.cheap(intrinsic)  # -> (B, (s-1) ceil(C/s), H, W)
        return torch.cat([intrinsic, ghosts], dim=1)[:, : self.out_channels]  # -> (B, C, H, W)


class GhostBottleneck(nn.Module):
    """Two feature modules around an optional stride-2 depthwise conv and SE, plus a shortcut.

    ``module(in_channels, out_channels, act=act)`` builds the two feature modules:
    :class:`GhostModule` for GhostNet, ``RepGhostModule`` for RepGhostNet.
    """

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_channels: int | None = None,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        se_act: Callable[[], nn.Module] = nn.ReLU,
        se_gate: Callable[[], nn.Module] = nn.Hardsigmoid,
        module: Callable[..., nn.Module] = GhostModule,
        identity_shortcut: bool | None = None,
    ) -> None:
        super().__init__()
        if identity_shortcut is None:  # built by hand: the spec's rule
            identity_shortcut = stride == 1 and in_channels == out_channels
        self.expand = module(in_channels, mid_channels, act=act)
        self.depthwise: nn.Module = nn.Identity()  # only the stride-2 bottleneck has a depthwise conv
        if stride > 1:
            self.depthwise = ConvNormAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=None)
        self.se = SqueezeExcite(mid_channels, se_channels, se_act, se_gate) if se_channels else nn.Identity()
        self.project = module(mid_channels, out_channels, act=None)  # linear: no activation
        if identity_shortcut:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvNormAct(in_channels, in_channels, kernel_size, stride, groups=in_channels, act=None),
                ConvNormAct(in_channels, out_channels, 1, act=None),
            )

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # the branch ends in a concatenation (Ghost) or a sum with a BN branch (RepGhost) fed by the primary
        # conv, with no bias or activation between: gamma = 0 there zeroes the whole branch output
        if not isinstance(self.shortcut, nn.Identity):
            return ()
        return init_last_norm(self.project.primary.norm, zero_init_last)

    def width_dims(self) -> dict:
        """Width-surgery protocol (``edgevision.prune``): the expanded width ``mid`` as a segmented map.

        GhostNet's expand module outputs [primary (mid/2), cheap ghosts (mid/2)] concatenated, so
        the shape-difference discovery cannot map ``mid`` one index per channel; declared here:
        part 0 = the primary conv's outputs, part 1 = the cheap conv's, and every consumer of the
        whole concatenation (stride-2 depthwise, squeeze-excite, the projection's primary conv)
        sees both parts. Only ``mid``: the other widths are left to discovery (an empty dict
        when the modules are not two-part Ghost modules, e.g. RepGhost's). ``out`` likewise when the
        projection is a two-part Ghost module: its parts, plus the shortcut's last conv (or, with an
        identity shortcut, the input side of the expand conv, since in and out are one width).
        """
        if not isinstance(self.expand, GhostModule) or not self.expand.output_parts():
            return {}
        declared = {"mid": self._mid_dims()}
        if self.project.output_parts():
            out = list(self.project.width_dims("project.")["out"])
            state = self.state_dict()
            if isinstance(self.shortcut, nn.Identity):  # in == out: the expand conv reads these channels
                out += [(k, 1) for k, t in state.items() if k.startswith("expand.primary.") and t.dim() == 4]
                declared[("in", "out")] = tuple(out)
            else:
                out += [(k, 0) for k, t in state.items() if k.startswith("shortcut.1.") and t.dim() > 0]
                declared["out"] = tuple(out)
        return declared

    def _mid_dims(self) -> tuple:
        mid = self.expand.out_channels
        dims = list(self.expand.width_dims("expand.")["out"])
        for key, tensor in self.state_dict().items():
            if key.startswith("depthwise.") and tensor.dim() > 0:
                dims.append((key, 0))  # depthwise (mid, 1, k, k) and its norm / folded bias
            elif key.startswith("se.reduce.") and key.endswith("weight"):
                dims.append((key, 1))
            elif key.startswith("se.expand."):
                dims.append((key, 0))
            elif key.startswith("project.primary.") and tensor.dim() == 4 and tensor.shape[1] == mid:
                dims.append((key, 1))
        return tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x)  # (B, C, H, W) -> (B, C_mid, H, W)
        out = self.se(self.depthwise(out))  # -> (B, C_mid, H/s, W/s)
        return self.project(out) + self.shortcut(x)  # -> (B, C', H/s, W/s)
