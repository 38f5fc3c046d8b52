"""A binarized fully convolutional network (BFCN) for segmentation: binary weights and binary activations
with learnable thresholds, for hardware that computes with bits (the pixel-processor-array seed of issue 17).

The binarization follows three papers:

* BinaryNet (Courbariaux et al. 2016, Sec. 1.1-1.3): the forward pass uses ``sign`` (+1 at 0); the backward
  pass is the straight-through estimator, the gradient of ``clamp(x, -1, 1)`` (1 inside, 0 outside);
* XNOR-Net (Rastegari et al. 2016, Sec. 3.2): each output channel's binary weights are scaled by
  ``alpha = mean |W|`` of that channel, so ``W ~ alpha * sign(W)``;
* ReActNet (Liu et al. 2020, Sec. 3.2, "RSign"): the activation is ``sign(x - t)`` with a learnable
  threshold ``t`` per channel, which shifts each channel's +1/-1 boundary.

As all three do, the first convolution (it reads the image) and the 1x1 classifier stay in full precision;
every convolution between them is binary in both weights and inputs, followed by BatchNorm (in deploy
arithmetic a per-channel threshold comparison). Layout, for ``widths = (w0, ..., wn)`` and ``strides``::

    conv3x3(in -> w0, /s0) + BN + RSign  ->  [binary conv3x3(w_{i-1} -> w_i, /s_i) + BN + RSign] x n  ->  conv1x1(wn -> K)  ->  bilinear x OS

Every op is a plain ONNX op (``Where``, ``Clip``, ``Conv``), so the model exports and quantizes like any other.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import check, check_positive
from ..task_spec import TaskModelSpec

__all__ = ["BinaryActivation", "BinaryConv2d", "BinaryFCN", "BinaryFCNSpec", "binarize"]


def binarize(x: torch.Tensor) -> torch.Tensor:
    """``sign(x)`` with sign(0) = +1 in the forward pass; the straight-through gradient 1[|x| <= 1] backward."""
    clipped = x.clamp(-1.0, 1.0)
    return clipped + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - clipped).detach()


class BinaryActivation(nn.Module):
    """ReActNet's RSign: ``sign(x - t)`` with a learnable threshold ``t`` per channel (initialized at 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.threshold = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H, W) in {-1, +1}
        return binarize(x - self.threshold.view(1, -1, 1, 1))


class BinaryConv2d(nn.Conv2d):
    """A convolution whose weights are ``alpha * sign(W)`` (XNOR-Net: ``alpha`` = mean |W| per output channel);
    the float ``W`` is what the optimizer updates (BinaryNet keeps real-valued weights for the updates)."""

    def binary_weight(self) -> torch.Tensor:
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)  # (O, 1, 1, 1)
        return alpha * binarize(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.binary_weight(), self.bias)


@dataclass(frozen=True, kw_only=True)
class BinaryFCNSpec(TaskModelSpec):
    """A binarized FCN (see the module docstring): widths and strides of its conv layers, the first full precision."""

    kind: ClassVar[str] = "binary_fcn"
    task: ClassVar[str] = "segmentation"

    name: str
    widths: tuple[int, ...] = (32, 64, 128, 256)
    strides: tuple[int, ...] = (2, 2, 2, 1)  # output stride 8
    num_classes: int = 21
    in_channels: int = 3
    input_size: int = 256

    def validate(self) -> None:
        check(self, "name", bool(self.name), "a non-empty string")
        check_positive(self, "num_classes", "in_channels", "input_size")
        check(self, "widths", len(self.widths) >= 2 and all(w > 0 for w in self.widths), "at least two positive widths (a full-precision first conv, then binary ones)")
        check(self, "strides", len(self.strides) == len(self.widths) and all(s in (1, 2) for s in self.strides), f"{len(self.widths)} strides of 1 or 2")

    @property
    def output_stride(self) -> int:
        return math.prod(self.strides)

    def with_classes(self, num_classes: int) -> "BinaryFCNSpec":
        return dataclasses.replace(self, num_classes=num_classes)

    def with_input_channels(self, in_channels: int) -> "BinaryFCNSpec":
        return dataclasses.replace(self, in_channels=in_channels)

    def build(self) -> "BinaryFCN":
        return BinaryFCN(self)


class BinaryFCN(nn.Module):
    """``stem`` (full precision) -> ``stages`` (binary) -> ``classifier`` (full precision); logits at the input size."""

    def __init__(self, spec: BinaryFCNSpec) -> None:
        super().__init__()
        self.spec = spec
        first = spec.widths[0]
        self.stem = nn.Sequential(nn.Conv2d(spec.in_channels, first, 3, spec.strides[0], 1, bias=False), nn.BatchNorm2d(first), BinaryActivation(first))
        self.stages = nn.Sequential(*(
            nn.Sequential(BinaryConv2d(before, after, 3, stride, 1, bias=False), nn.BatchNorm2d(after), BinaryActivation(after))
            for before, after, stride in zip(spec.widths, spec.widths[1:], spec.strides[1:])
        ))
        self.classifier = nn.Conv2d(spec.widths[-1], spec.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, K, H, W)
        features = self.stages(self.stem(x))  # (N, w_n, H/OS, W/OS), entries in {-1, +1}
        return F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
