"""VGG stages and head (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR 2015, Table 1).

A stage is one group of Table 1's columns between two max pools:

    [3x3 conv (bias) -> (BN) -> ReLU] x num_convs -> 2x2 max pool (stride 2)

Layout as the reference PyTorch release (torchvision ``vgg.py``): every conv keeps its bias even in
the BatchNorm variants (``vgg11_bn``), which is why those count conv biases *and* BN parameters.
The head is torchvision's: 7x7 adaptive average pool -> flatten -> fc 4096 -> ReLU -> dropout ->
fc 4096 -> ReLU -> dropout -> fc classes (the paper's three FC layers, Table 1 bottom rows; the
adaptive pool makes the 25088-wide first FC accept any input size).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock
from .head import HeadSpec

__all__ = ["VGGHead", "VGGHeadSpec", "VGGStage", "VGGStageSpec"]


@dataclass(frozen=True, kw_only=True)
class VGGStageSpec(BlockSpec):
    """``num_convs`` 3x3 convs of ``out_channels`` then (stride 2) a 2x2 max pool."""

    kind: ClassVar[str] = "vgg_stage"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    num_convs: int = 2
    batch_norm: bool = False
    stride: int = 2  # 2: end with the 2x2 max pool; 1: no pool

    def validate(self) -> None:
        super().validate()
        check_positive(self, "num_convs")

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return (input_size[0] // self.stride, input_size[1] // self.stride)  # 3x3 'same' convs, then floor pooling

    def build(self, block: ResolvedBlock) -> nn.Module:
        return VGGStage(block.in_channels, block.out_channels, self.num_convs, self.batch_norm, self.stride)


class VGGStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_convs: int, batch_norm: bool, stride: int = 2) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else None
        self.convs = nn.Sequential(
            *(
                ConvNormAct(in_channels if index == 0 else out_channels, out_channels, 3, norm=norm, bias=True)
                for index in range(num_convs)
            )
        )
        self.pool = nn.MaxPool2d(2, 2) if stride == 2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.convs(x))  # (B, C, H, W) -> (B, C', H/2, W/2)


@dataclass(frozen=True, kw_only=True)
class VGGHeadSpec(HeadSpec):
    """Adaptive average pool to ``pool_size`` x ``pool_size`` -> two hidden FC layers -> classifier."""

    kind: ClassVar[str] = "vgg_head"

    hidden_features: int = 4096
    pool_size: int = 7
    dropout: float = 0.5
    second_hidden_features: int | None = None  # None: the same as hidden_features (Table 1); a pruned head sets it

    def validate(self) -> None:
        super().validate()
        check_positive(self, "hidden_features", "pool_size", "second_hidden_features")
        check(self, "dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=self.num_classes, mid_channels=self.hidden_features)

    def inner_widths(self) -> dict[str, int]:
        """Width-surgery protocol (``edgevision.prune``): the second FC width (the first is ``mid``)."""
        return {"second_hidden": self.second_hidden_features or self.hidden_features}

    def with_inner_widths(self, widths: dict[str, int]) -> "VGGHeadSpec":
        return dataclasses.replace(self, second_hidden_features=widths.get("second_hidden", self.second_hidden_features))

    def build(self, block: ResolvedBlock) -> nn.Module:
        second = self.second_hidden_features or self.hidden_features
        return VGGHead(block.in_channels, self.num_classes, block.mid_channels, self.pool_size, self.dropout, second)


def adaptive_average_matrix(in_size: int, out_size: int, like: torch.Tensor) -> torch.Tensor:
    """(out_size, in_size) matrix whose row i averages the cells of PyTorch's adaptive-pooling bin i:
    [floor(i * in / out), ceil((i + 1) * in / out))."""
    rows = []
    for index in range(out_size):
        start, end = (index * in_size) // out_size, -(-((index + 1) * in_size) // out_size)
        rows.append([1.0 / (end - start) if start <= cell < end else 0.0 for cell in range(in_size)])
    return torch.tensor(rows, dtype=like.dtype, device=like.device)  # built from Python numbers: a constant when traced


class VGGHead(nn.Module):
    """Adaptive average pool -> classifier.

    At the native 224 the feature map already is 7x7 and the pool is the identity. Where 7 does
    not divide the map (a 2x2 map of a 64x64 test input), the pool is written as two small
    averaging matmuls, numerically ``adaptive_avg_pool2d`` but exportable to ONNX, whose exporter
    refuses adaptive pooling to a size that does not divide the input.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden_features: int, pool_size: int, dropout: float,
        second_hidden_features: int | None = None,
    ) -> None:
        super().__init__()
        second = second_hidden_features or hidden_features
        self.pool_size = pool_size
        self.classifier = nn.Sequential(
            nn.Linear(in_channels * pool_size * pool_size, hidden_features),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_features, second),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(second, num_classes),
        )

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        size = self.pool_size
        if (height, width) == (size, size):
            return x
        if height % size == 0 and width % size == 0:
            return F.adaptive_avg_pool2d(x, size)
        rows = adaptive_average_matrix(height, size, x)  # (7, H)
        cols = adaptive_average_matrix(width, size, x)  # (7, W)
        return rows @ x @ cols.T  # (7, H) @ (B, C, H, W) @ (W, 7) -> (B, C, 7, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x).flatten(1)  # (B, C, H, W) -> (B, C * 7 * 7)
        return self.classifier(x)  # -> (B, num_classes)
