"""The depth model spec: a zoo backbone's deepest feature map, a 1x1 bottleneck, FCRN up-projections,
a 3x3 convolution to one depth channel (Laina et al. 2016, Fig. 1 and Table 1 "ResNet-UpProj").

One spec, many readers: ``build()`` makes the module, the checkpoint stores the spec JSON, the
commands read ``input_size`` / ``output_reduction``.

**Output resolution.** The encoder stops at reduction 32; each up-projection doubles H and W, so
with FCRN's four blocks the depth map is 16x the encoder map: [N, 1, 16*ceil(H/32), 16*ceil(W/32)],
i.e. H/2 x W/2 when H and W are multiples of 32, and 128 x 160 for the paper's 228 x 304 NYU input
(the paper's "160 x 128 output for a 304 x 228 input", Sec. 4.1). Losses and metrics resize the
prediction bilinearly to the target's size (``edgevision.depth.training.match_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..blocks.up_projection import UpProjectionSpec
from ..network import NetworkSpec
from ..spec import check, check_positive
from ..task_spec import TaskModelSpec

__all__ = ["DepthModelSpec", "DepthNet", "ENCODER_REDUCTION"]

#: the backbone level the decoder starts from (res5 / the last inverted-residual stage)
ENCODER_REDUCTION = 32


@dataclass(frozen=True, kw_only=True)
class DepthModelSpec(TaskModelSpec):
    """Monocular depth regressor: ``backbone`` (a features-only NetworkSpec returning one level) -> depth [N, 1, H', W']."""

    kind: ClassVar[str] = "depth_model"
    task: ClassVar[str] = "depth"

    name: str
    backbone: NetworkSpec  # cut after its reduction-32 level, features head with that one level
    backbone_channels: int  # channels of that level (2048 for ResNet-50)
    bottleneck_channels: int  # the 1x1 conv + BN after the encoder (FCRN: 2048 -> 1024)
    decoder: tuple[UpProjectionSpec, ...]
    in_channels: int = 3
    input_size: tuple[int, int] = (228, 304)  # H x W: NYU-v2 at half resolution, as the paper trains
    max_depth: float = 10.0  # metres: NYU-v2's range; predictions are clamped to [min_depth, max_depth] for metrics
    min_depth: float = 1e-3

    def validate(self) -> None:
        check_positive(self, "backbone_channels", "bottleneck_channels", "in_channels", "max_depth", "min_depth")
        check(self, "input_size", all(side >= 1 for side in self.input_size), "two positive sides (H, W)")
        check(self, "max_depth", self.max_depth > self.min_depth, f"greater than min_depth={self.min_depth}")
        check(self, "decoder", len(self.decoder) > 0, "at least one up-projection block")
        check(self, "backbone", self.backbone.in_channels == self.in_channels, f"a network with in_channels={self.in_channels}")
        widths = [self.bottleneck_channels] + [block.out_channels for block in self.decoder]
        inputs = [block.in_channels for block in self.decoder]
        check(self, "decoder", inputs == widths[:-1], f"a chain starting at bottleneck_channels={self.bottleneck_channels} (each block's in_channels = the previous out_channels)")

    @property
    def output_reduction(self) -> float:
        """Input size / output size for inputs that are multiples of 32 (FCRN: 2)."""
        return ENCODER_REDUCTION / 2 ** len(self.decoder)

    def output_size(self, input_size: tuple[int, int] | None = None) -> tuple[int, int]:
        """H' x W' of the depth map for an H x W input (the encoder rounds each side up at every stride 2)."""
        height, width = input_size or self.input_size
        scale = 2 ** len(self.decoder)
        return (-(-height // ENCODER_REDUCTION) * scale, -(-width // ENCODER_REDUCTION) * scale)

    def build(self) -> "DepthNet":
        return DepthNet(self)


class DepthNet(nn.Module):
    """[N, C, H, W] image -> [N, 1, H', W'] metric depth (see the module docstring for H', W')."""

    onnx_output_names = ("depth",)  # read by export: the graph's output is named for what it holds

    def __init__(self, spec: DepthModelSpec) -> None:
        super().__init__()
        from ..builder import build

        self.spec = spec
        self.encoder = build(spec.backbone)
        self.bottleneck = nn.Sequential(nn.Conv2d(spec.backbone_channels, spec.bottleneck_channels, 1, bias=False), nn.BatchNorm2d(spec.bottleneck_channels))
        self.decoder = nn.Sequential(*(block.build() for block in spec.decoder))
        self.predict = nn.Conv2d(spec.decoder[-1].out_channels, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (features,) = self.encoder(x)  # [N, C5, H/32, W/32]
        return self.predict(self.decoder(self.bottleneck(features)))  # [N, 1, 16 H/32, 16 W/32] with four blocks
