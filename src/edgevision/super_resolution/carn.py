"""CARN and CARN-M (Ahn, Kang, Sohn, "Fast, Accurate, and Lightweight Super-Resolution with Cascading
Residual Network", ECCV 2018), and GhostSR applied to CARN (Nie et al. 2021).

Structure as in the paper's Fig. 2-3 and the official release (nmhkahn/CARN-pytorch, ``carn.py`` /
``carn_m.py`` / ``ops.py``), which we follow where the paper is silent:

- entry conv3x3 3->64; three cascading blocks, each with global cascading 1x1 convs (64*(k+1) -> 64,
  ReLU) over the concatenation of the entry features and every earlier block's output;
- a cascading block is three residual units with the same local cascade inside;
- CARN's residual unit: conv3x3-ReLU-conv3x3 + identity, ReLU after the sum;
- CARN-M's efficient unit: grouped conv3x3 (groups=4)-ReLU-grouped conv3x3-ReLU-conv1x1 + identity,
  ReLU; and CARN-M is *recursive*: a cascading block applies one shared unit three times (the release's
  ``b1`` used for all three), which is how it reaches 412K parameters;
- upsampler: pixel shuffle with a ReLU'd conv per step (grouped in CARN-M); the multi-scale models hold
  x2, x3 and x4 upsamplers on one body (the paper's 1,592K / 412K) and ``scale`` picks one;
- exit conv3x3 64->3; DIV2K mean subtracted at the input and added back at the output.

The paper's parameter count (Table 2: 1,592K and 412K) includes all three upsamplers. Our CARN-M has
414.8K: the same layers as the release; the paper's 412K is 0.7% lower (we did not find which layers
its count leaves out). Mult-adds (Table 2, for a 1280x720 SR output) match: see ``cost.py``.

GhostSR (``ghost=True``): each residual unit's 3x3 convs become :class:`GhostShiftConv` (half the
channels computed, half learned shifts), the paper's treatment of CARN (Sec. 4, Table 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..spec import check, check_positive
from ..task_spec import TaskModelSpec
from .ghost import GhostShiftConv
from .layers import DIV2K_RGB_MEAN, MeanShift, PixelShuffleUpsampler, check_scale

__all__ = ["SRModelSpec", "CARNSpec", "CARN"]


@dataclass(frozen=True, kw_only=True)
class SRModelSpec(TaskModelSpec):
    """Fields every SR spec has. ``scale``: the factor the forward applies; ``scales``: the upsamplers built."""

    task: ClassVar[str] = "super-resolution"

    name: str
    in_channels: int = 3
    input_size: tuple[int, int] = (64, 64)  # LR size for measure/bench/export; the SR output is input_size * scale
    scale: int = 4
    scales: tuple[int, ...] = (4,)

    def validate(self) -> None:
        check_positive(self, "in_channels")
        check(self, "scales", len(self.scales) > 0 and all(s in (2, 3, 4, 8) for s in self.scales) and len(set(self.scales)) == len(self.scales),
              "distinct scales among 2, 3, 4, 8")
        check(self, "scale", self.scale in self.scales, f"one of the built scales {self.scales}")

    @property
    def min_input_size(self) -> int:
        """Smallest LR side the network accepts."""
        return 1

    def with_scale(self, scale: int) -> "SRModelSpec":
        """The same network at another scale: selects a built upsampler, or (single-scale) replaces it."""
        check_scale(scale)
        if scale in self.scales:
            return dataclasses.replace(self, scale=scale)
        if len(self.scales) == 1:
            return dataclasses.replace(self, scale=scale, scales=(scale,))
        raise ValueError(f"{self.name} holds upsamplers for x{', x'.join(map(str, self.scales))}, not x{scale}")


@dataclass(frozen=True, kw_only=True)
class CARNSpec(SRModelSpec):
    kind: ClassVar[str] = "carn"

    channels: int = 64
    blocks: int = 3           # cascading blocks
    units: int = 3            # residual units per block
    efficient: bool = False   # CARN-M's grouped efficient residual unit
    recursive: bool = False   # CARN-M: one shared unit per block
    groups: int = 1           # groups of the efficient unit's and the upsampler's 3x3 convs
    ghost: bool = False       # GhostSR: the units' 3x3 convs generate half their channels by learned shifts
    ghost_ratio: int = 2

    def validate(self) -> None:
        super().validate()
        check_positive(self, "channels", "blocks", "units", "groups", "ghost_ratio")
        check(self, "groups", self.channels % self.groups == 0, f"a divisor of channels ({self.channels})")

    def build(self) -> "CARN":
        return CARN(self)


def _conv3x3(spec: CARNSpec, groups: int = 1) -> nn.Module:
    if spec.ghost:
        return GhostShiftConv(spec.channels, spec.channels, ratio=spec.ghost_ratio, groups=groups)
    return nn.Conv2d(spec.channels, spec.channels, 3, padding=1, groups=groups)


class ResidualUnit(nn.Module):
    """CARN: relu(x + conv(relu(conv(x)))); CARN-M (efficient): relu(x + conv1x1(relu(gconv(relu(gconv(x))))))."""

    def __init__(self, spec: CARNSpec) -> None:
        super().__init__()
        c = spec.channels
        if spec.efficient:
            self.body = nn.Sequential(_conv3x3(spec, spec.groups), nn.ReLU(inplace=True), _conv3x3(spec, spec.groups),
                                      nn.ReLU(inplace=True), nn.Conv2d(c, c, 1))
        else:
            self.body = nn.Sequential(_conv3x3(spec), nn.ReLU(inplace=True), _conv3x3(spec))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + x)


class Cascade(nn.Module):
    """Cascading connections over ``steps``: x -> cat(x, y1) -1x1-> x1 -> step2 ... (Fig. 2b/3a).

    ``steps`` is a list of modules, or one module applied ``count`` times (CARN-M's recursion)."""

    def __init__(self, channels: int, steps: list[nn.Module] | nn.Module, count: int) -> None:
        super().__init__()
        self.count = count
        self.steps = steps if isinstance(steps, nn.Module) and not isinstance(steps, nn.ModuleList) else nn.ModuleList(steps)
        self.fuse = nn.ModuleList(nn.Sequential(nn.Conv2d(channels * (k + 2), channels, 1), nn.ReLU(inplace=True)) for k in range(count))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, out = [x], x
        for k in range(self.count):
            step = self.steps[k] if isinstance(self.steps, nn.ModuleList) else self.steps
            features.append(step(out))
            out = self.fuse[k](torch.cat(features, dim=1))  # [N, C*(k+2), H, W] -> [N, C, H, W]
        return out


class CARN(nn.Module):
    """LR [N, 3, h, w] in [0, 1] -> SR [N, 3, h*s, w*s] (``s = spec.scale``)."""

    onnx_output_names = ("sr",)  # read by export (main's protocol): the graph output holds the SR image

    def __init__(self, spec: CARNSpec) -> None:
        super().__init__()
        self.spec = spec
        c = spec.channels
        self.sub_mean = MeanShift(DIV2K_RGB_MEAN[: spec.in_channels] if spec.in_channels == 3 else (0.5,) * spec.in_channels, -1)
        self.add_mean = MeanShift(DIV2K_RGB_MEAN[: spec.in_channels] if spec.in_channels == 3 else (0.5,) * spec.in_channels, +1)
        self.entry = nn.Conv2d(spec.in_channels, c, 3, padding=1)

        def block() -> Cascade:
            if spec.recursive:
                return Cascade(c, ResidualUnit(spec), spec.units)
            return Cascade(c, [ResidualUnit(spec) for _ in range(spec.units)], spec.units)

        self.body = Cascade(c, [block() for _ in range(spec.blocks)], spec.blocks)
        self.upsamplers = nn.ModuleDict({f"x{s}": PixelShuffleUpsampler(c, s, groups=spec.groups) for s in spec.scales})
        self.exit = nn.Conv2d(c, spec.in_channels, 3, padding=1)

    def feature_taps(self) -> list[nn.Module]:
        """Modules whose outputs are LR-space feature maps, shallow to deep: the cascading blocks (distillation)."""
        return list(self.body.steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(self.entry(self.sub_mean(x)))
        return self.add_mean(self.exit(self.upsamplers[f"x{self.spec.scale}"](features)))
