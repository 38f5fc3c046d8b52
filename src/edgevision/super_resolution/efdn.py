"""EFDN (Wang, "Edge-Enhanced Feature Distillation Network for Efficient Super-Resolution", CVPRW 2022),
with its edge-enhanced diverse branch block (EDBB) going through :func:`edgevision.reparam.reparameterize`.

Layout as in the official release (icandle/EFDN, ``EFDN_deploy.py``; 276,192 parameters at x4 in the
deploy form, the paper's 276K): head conv3x3 3->48; four cells; the second to fourth cell inputs are
1x1-fused pairs of earlier outputs (out1+out2, out2+out3, out2+out4 — the release's wiring); a global
skip; tail conv3x3 48 -> 3*s*s + PixelShuffle(s) (no ReLU: the release's tail).

A cell: conv1x1+PReLU, EDBB, EDBB, each stage's output reduced to 24 channels by its own 1x1 and the
four concatenated and fused back to 48 (feature distillation), then ESA attention, plus the input.

EDBB (Sec. 3.2) in train form sums five branches on the same input — conv3x3, conv1x1, and conv1x1
followed by a fixed Sobel-x, Sobel-y or Laplacian depthwise kernel with a learned per-channel scale and
bias — then PReLU; ``reparameterize()`` folds them into one conv3x3 (all branches are linear). The 1x1
of an edge branch sees the zero-padded input, so its border value is its bias, exactly what the fused
conv3x3 computes over zero padding (the release pads with the bias for the same reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import check_positive
from .carn import SRModelSpec

__all__ = ["EFDNSpec", "EFDN", "EDBB"]

_SOBEL_X = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
_SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


class EdgeBranch(nn.Module):
    """conv1x1 then a fixed edge filter with learned per-channel scale and bias (depthwise 3x3)."""

    def __init__(self, in_channels: int, out_channels: int, filter_taps) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1)
        self.scale = nn.Parameter(torch.randn(out_channels, 1, 1, 1) * 1e-3)
        self.bias = nn.Parameter(torch.randn(out_channels) * 1e-3)
        self.register_buffer("mask", torch.tensor(filter_taps).expand(out_channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(F.pad(x, (1, 1, 1, 1)))  # [N, C, H+2, W+2]; border = bias (see module docstring)
        return F.conv2d(y, self.scale * self.mask, self.bias, groups=y.shape[1])

    def fused(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [O, I, 3, 3], bias [O]) of the equivalent conv3x3 (padding 1)."""
        depthwise = (self.scale * self.mask)[:, 0]  # [O, 3, 3]
        weight = depthwise[:, None] * self.conv1x1.weight  # [O, I, 3, 3]: k1x1[o, i] * edge[o]
        bias = self.conv1x1.bias * depthwise.sum((1, 2)) + self.bias
        return weight, bias


class EDBB(nn.Module):
    """Edge-enhanced diverse branch block: [N, I, H, W] -> [N, O, H, W]; one conv3x3 + PReLU after reparameterize()."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv1x1: nn.Module | None = nn.Conv2d(in_channels, out_channels, 1)
        self.edges: nn.ModuleList | None = nn.ModuleList(EdgeBranch(in_channels, out_channels, taps) for taps in (_SOBEL_X, _SOBEL_Y, _LAPLACIAN))
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3x3(x)
        if self.conv1x1 is not None:
            y = y + self.conv1x1(x)
            for edge in self.edges:
                y = y + edge(x)
        return self.act(y)

    @property
    def has_train_branches(self) -> bool:  # read by reparam.is_deploy_form (no BatchNorm tells the forms apart here)
        return self.conv1x1 is not None

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.conv1x1 is None:
            return
        weight = self.conv3x3.weight + F.pad(self.conv1x1.weight, (1, 1, 1, 1))
        bias = self.conv3x3.bias + self.conv1x1.bias
        for edge in self.edges:
            w, b = edge.fused()
            weight, bias = weight + w, bias + b
        self.conv3x3.weight.copy_(weight)
        self.conv3x3.bias.copy_(bias)
        self.conv1x1 = None
        self.edges = None


class ESA(nn.Module):
    """Enhanced spatial attention (Liu et al. RFANet 2020), as in the EFDN release; needs H, W >= 15."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        f = channels // 4
        self.conv1 = nn.Conv2d(channels, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)  # [N, f, (H-3)//2+1, ...]
        pooled = F.max_pool2d(c1, kernel_size=7, stride=3)
        c3 = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(pooled)))))
        c3 = F.interpolate(c3, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class Cell(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.PReLU(channels))
        self.conv2 = EDBB(channels, channels)
        self.conv3 = EDBB(channels, channels)
        self.distill = nn.ModuleList(nn.Conv2d(channels, channels // 2, 1) for _ in range(4))
        self.fuse = nn.Conv2d(channels * 2, channels, 1)
        self.attention = ESA(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        distilled = torch.cat([d(o) for d, o in zip(self.distill, (x, out1, out2, out3))], dim=1)  # [N, 2C, H, W]
        return self.attention(self.fuse(distilled)) + x


@dataclass(frozen=True, kw_only=True)
class EFDNSpec(SRModelSpec):
    kind: ClassVar[str] = "efdn"

    channels: int = 48

    def validate(self) -> None:
        super().validate()
        check_positive(self, "channels")

    @property
    def min_input_size(self) -> int:
        return 15  # ESA: a stride-2 conv3x3 then a 7x7 max-pool must fit

    def build(self) -> "EFDN":
        return EFDN(self)


class EFDN(nn.Module):
    """LR [N, 3, h, w] (h, w >= 15: ESA's pooling) -> SR [N, 3, h*s, w*s]; one upsampler per built scale."""

    onnx_output_names = ("sr",)  # read by export (main's protocol): the graph output holds the SR image

    def __init__(self, spec: EFDNSpec) -> None:
        super().__init__()
        self.spec = spec
        c, out = spec.channels, spec.in_channels
        self.head = nn.Conv2d(spec.in_channels, c, 3, padding=1)
        self.cells = nn.ModuleList(Cell(c) for _ in range(4))
        self.local_fuse = nn.ModuleList(nn.Conv2d(c * 2, c, 1) for _ in range(3))
        self.tails = nn.ModuleDict({f"x{s}": nn.Sequential(nn.Conv2d(c, out * s * s, 3, padding=1), nn.PixelShuffle(s)) for s in spec.scales})

    def feature_taps(self) -> list[nn.Module]:
        """Modules whose outputs are LR-space feature maps, shallow to deep: the four cells (distillation)."""
        return list(self.cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out0 = self.head(x)
        out1 = self.cells[0](out0)
        out2 = self.cells[1](out1)
        out3 = self.cells[2](self.local_fuse[0](torch.cat([out1, out2], 1)))
        out4 = self.cells[3](self.local_fuse[1](torch.cat([out2, out3], 1)))
        fused = self.local_fuse[2](torch.cat([out2, out4], 1))
        return self.tails[f"x{self.spec.scale}"](fused + out0)
