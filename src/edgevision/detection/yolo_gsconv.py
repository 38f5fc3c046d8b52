"""A YOLO-style detector with the GSConv slim-neck (Li et al. 2022, "Slim-neck by GSConv", Sec. 3-4).

The paper's detectors are YOLOv5/YOLOv7-style: a CSPDarknet backbone and a PAN neck in which every
neck conv is a :class:`~edgevision.blocks.gsconv.GSConv` and every CSP merge a
:class:`~edgevision.blocks.gsconv.VoVGSCSP` (the release's ``yolov5s-gsconv`` layout)::

    backbone (YOLOv5, width w, depth d):  stem 3x3/2 -> [conv 3x3/2 + C3 x n] x 4 -> SPPF      P3, P4, P5 at /8, /16, /32
    slim-neck:  L5 = GSConv1x1(P5 -> c4);  T4 = VoVGSCSP(cat(up(L5), P4) -> c4)                  top-down
                L4 = GSConv1x1(T4 -> c3);  N3 = VoVGSCSP(cat(up(L4), P3) -> c3)                  -> out /8
                N4 = VoVGSCSP(cat(GSConv3x3/2(N3), L4) -> c4)                                    -> out /16
                N5 = VoVGSCSP(cat(GSConv3x3/2(N4), L5) -> c5)                                    -> out /32

with (c3, c4, c5) = (256, 512, 1024) x w. The head is YOLOv5's ``Detect`` — one 1x1 conv per level — but
anchor-free: it predicts GFL's class-quality scores and edge distributions (reg_max 7), trained with
QFL / DFL / GIoU on SimOTA positives as YOLOX assigns them, so it shares :class:`GFLDetector`'s loss,
post-processing and NMS-in-graph export with PP-PicoDet (the paper's anchor-based YOLO head is not built).
Differences from YOLOv5 v6: a 3x3 stride-2 stem in place of its 6x6 one (every stride-2 op then maps n ->
ceil(n / 2), which the point grid assumes); SiLU everywhere (the paper's Mish is not in the activation set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.gsconv import GSConv, VoVGSCSP
from ..layers import ConvNormAct
from .picodet import GFLDetector, GFLDetectorSpec, PicoHead, stage_outputs

__all__ = ["YOLOGSConv", "YOLOGSConvSpec"]

_BASE_WIDTHS = (64, 128, 256, 512, 1024)  # YOLOv5 stem and the four stages at width 1.0
_BASE_DEPTHS = (3, 6, 9, 3)  # C3 repeats at depth 1.0


def _conv(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> ConvNormAct:
    return ConvNormAct(in_channels, out_channels, kernel_size, stride, act=nn.SiLU)


class _Bottleneck(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce, self.conv = _conv(channels, channels, 1), _conv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.reduce(x))


class C3(nn.Module):
    """YOLOv5's CSP bottleneck with 3 convs: two 1x1 halves, ``n`` residual bottlenecks on one, 1x1 fuse."""

    def __init__(self, in_channels: int, out_channels: int, repeats: int) -> None:
        super().__init__()
        hidden = out_channels // 2
        self.main, self.short = _conv(in_channels, hidden), _conv(in_channels, hidden)
        self.blocks = nn.Sequential(*(_Bottleneck(hidden) for _ in range(repeats)))
        self.fuse = _conv(2 * hidden, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat((self.blocks(self.main(x)), self.short(x)), dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: 1x1 halve, three chained 5x5 max-pools, concat the four, 1x1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce, self.fuse = _conv(channels, channels // 2), _conv(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [self.reduce(x)]
        for _ in range(3):
            pooled.append(F.max_pool2d(pooled[-1], 5, 1, 2))
        return self.fuse(torch.cat(pooled, dim=1))


class CSPDarknet(nn.Module):
    """YOLOv5's backbone at ``width`` x channels and ``depth`` x C3 repeats -> P3, P4, P5."""

    def __init__(self, width: float, depth: float, in_channels: int = 3) -> None:
        super().__init__()
        channels = [max(8, int(round(c * width / 8)) * 8) for c in _BASE_WIDTHS]
        repeats = [max(1, round(n * depth)) for n in _BASE_DEPTHS]
        self.stem = _conv(in_channels, channels[0], 3, 2)
        self.stages = nn.ModuleList(
            nn.Sequential(_conv(channels[i], channels[i + 1], 3, 2), C3(channels[i + 1], channels[i + 1], repeats[i])) for i in range(4))
        self.stages[-1].append(SPPF(channels[-1]))
        self.out_channels = channels[2:]
        self.repeats = repeats

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.stem, self.stages, x)[1:]  # strides 8, 16, 32


class SlimNeck(nn.Module):
    """The GSConv / VoV-GSCSP PAN of the module docstring: (P3, P4, P5) -> outputs of (c3, c4, c5) channels."""

    def __init__(self, channels: list[int], repeats: int) -> None:
        super().__init__()
        c3, c4, c5 = channels

        def merge(in_channels: int, out_channels: int) -> VoVGSCSP:
            hidden = out_channels // 2  # VoVGSCSPSpec's defaults: expansion 0.5, bottleneck width hidden // 2
            return VoVGSCSP(in_channels, out_channels, hidden, hidden // 2, repeats, act=nn.SiLU)

        self.lateral5, self.top_down4 = GSConv(c5, c4, 1), merge(2 * c4, c4)
        self.lateral4, self.top_down3 = GSConv(c4, c3, 1), merge(2 * c3, c3)
        self.down3, self.bottom_up4 = GSConv(c3, c3, 3, 2), merge(2 * c3, c4)
        self.down4, self.bottom_up5 = GSConv(c4, c4, 3, 2), merge(2 * c4, c5)
        self.out_channels = [c3, c4, c5]

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        p3, p4, p5 = features
        lateral5 = self.lateral5(p5)
        lateral4 = self.lateral4(self.top_down4(torch.cat((F.interpolate(lateral5, size=p4.shape[-2:], mode="nearest"), p4), dim=1)))
        n3 = self.top_down3(torch.cat((F.interpolate(lateral4, size=p3.shape[-2:], mode="nearest"), p3), dim=1))
        n4 = self.bottom_up4(torch.cat((self.down3(n3), lateral4), dim=1))
        n5 = self.bottom_up5(torch.cat((self.down4(n4), lateral5), dim=1))
        return [n3, n4, n5]


@dataclass(frozen=True, kw_only=True)
class YOLOGSConvSpec(GFLDetectorSpec):
    """A YOLOv5-style detector with the slim-neck: backbone width/depth multipliers (+ the GFL/SimOTA fields)."""

    kind: ClassVar[str] = "yolo_gsconv"
    width: float = 0.25
    depth: float = 0.33
    strides: tuple[int, ...] = (8, 16, 32)

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if self.strides != (8, 16, 32):
            problems.append(f"strides must be (8, 16, 32) (P3-P5), got {self.strides}")
        if not (0 < self.width <= 2 and 0 < self.depth <= 2):
            problems.append(f"width and depth must be in (0, 2], got {self.width} and {self.depth}")
        return problems

    def build(self) -> "YOLOGSConv":
        return YOLOGSConv(self)


class YOLOGSConv(GFLDetector):
    """CSPDarknet -> slim-neck -> YOLO Detect-style 1x1 GFL prediction per level (see the module docstring)."""

    def _build(self, spec: YOLOGSConvSpec) -> None:
        self.backbone = CSPDarknet(spec.width, spec.depth, spec.in_channels)
        neck_repeats = max(1, round(3 * spec.depth))  # the release's VoVGSCSP n = 3, depth-scaled
        self.neck = SlimNeck(self.backbone.out_channels, neck_repeats)
        self.head = PicoHead(self.neck.out_channels, 0, 1, spec.num_classes, spec.reg_max)
