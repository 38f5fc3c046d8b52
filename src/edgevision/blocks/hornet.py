"""HorNet blocks (Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive Gated
Convolutions", NeurIPS 2022: gⁿConv and the HorNet block).

Recursive gated convolution gⁿConv on a C-channel input, order n, channel widths
C_k = C / 2^(n-1-k) for k = 0 .. n-1 (C_0 smallest, C_(n-1) = C):

    [p_0, q_0 ... q_(n-1)] = proj_in(x)                 1x1 conv, C -> 2C (= C_0 + sum C_k)
    q_k' = s * DWConv_7x7([q_0 ... q_(n-1)])_k          one depthwise conv over all q, scaled by s = 1/3
    p_1 = p_0 * q_0'  ;  p_(k+1) = pw_k(p_k) * q_k'     gated recursion, pw_k: 1x1 conv C_(k-1) -> C_k
    y = proj_out(p_n)                                   1x1 conv, C -> C

HorNet block (ConvNeXt-style): x + gamma_1 * gⁿConv(LN(x)), then x + gamma_2 * MLP(LN(x)) with a
4x GELU MLP and layer scale gamma (init 1e-6). Stages use orders 2, 3, 4, 5. Downsampling is a
patchify conv: 4x4/4 conv + LN in the stem, LN + 2x2/2 conv between stages. Every conv has a bias;
LayerNorm is over channels ("channels_first" in the release) and cannot be folded, and there is no
BatchNorm, so the deploy form equals the train form. Layout and initial values follow the
authors' release (raoyongming/HorNet ``hornet.py``: ``gnconv``, ``Block``, ``LayerNorm``).
Blocks exchange NCHW tensors; the MLP runs channels-last inside the block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..initialization import init_layer_scale
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock
from .head import HeadSpec

__all__ = [
    "HorNetBlockSpec",
    "HorNetDownsampleSpec",
    "HorNetHeadSpec",
    "HorNetBlock",
    "HorNetDownsample",
    "HorNetHead",
    "LayerNorm2d",
    "RecursiveGatedConv",
    "gnconv_widths",
    "init_trunc_normal",
]

LAYER_NORM_EPS = 1e-6  # the release's eps for every LayerNorm


def init_trunc_normal(module: nn.Module, std: float = 0.02) -> None:
    """The release's initialisation: truncated normal (std 0.02) conv/linear weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(layer.weight, std=std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (the release's ``data_format="channels_first"``)."""

    def __init__(self, num_channels: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # -> (B, C, H, W)


@dataclass(frozen=True, kw_only=True)
class HorNetDownsampleSpec(BlockSpec):
    """Non-overlapping patchify conv (kernel = stride) with a channel LayerNorm before or after it.

    Stem: 4x4/4 conv -> LN (``norm_first=False``); between stages: LN -> 2x2/2 conv (``norm_first=True``).
    """

    kind: ClassVar[str] = "hornet_downsample"
    allowed_strides: ClassVar[tuple[int, ...]] = (2, 4)

    out_channels: int
    stride: int = 2
    norm_first: bool = True

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return (input_size[0] // self.stride, input_size[1] // self.stride)  # valid padding, kernel = stride

    def build(self, block: ResolvedBlock) -> nn.Module:
        return HorNetDownsample(block.in_channels, block.out_channels, self.stride, self.norm_first)


class HorNetDownsample(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, norm_first: bool) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm = LayerNorm2d(in_channels if norm_first else out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=stride, stride=stride)
        init_trunc_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            return self.conv(self.norm(x))  # (B, C, H, W) -> (B, C', H/s, W/s)
        return self.norm(self.conv(x))


@dataclass(frozen=True, kw_only=True)
class HorNetBlockSpec(BlockSpec):
    """gⁿConv + MLP residual block; keeps width and resolution (``out_channels`` = the stage width)."""

    kind: ClassVar[str] = "hornet_block"
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)

    out_channels: int
    order: int  # n of gⁿConv: 2, 3, 4, 5 in stages 1-4 of every HorNet
    kernel_size: int = 7  # the depthwise conv of the "7x7" models (the GF models use a global filter instead)
    gate_scale: float = 1.0 / 3.0  # s: scales the depthwise output
    mlp_ratio: float = 4.0
    layer_scale_init: float = 1e-6
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        check(self, "order", self.order >= 1, ">= 1 (1 is a gated conv without recursion)")
        check(self, "kernel_size", self.kernel_size >= 1 and self.kernel_size % 2 == 1, "an odd positive int")
        check_positive(self, "gate_scale", "mlp_ratio", "layer_scale_init")
        check(
            self,
            "out_channels",
            self.out_channels % 2 ** (self.order - 1) == 0,
            f"divisible by 2^(order - 1) = {2 ** (self.order - 1)} (gⁿConv halves the width order - 1 times)",
        )

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=int(out * self.mlp_ratio))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        if in_channels != widths.out_channels:
            raise ValueError(
                f"HorNetBlockSpec.out_channels resolves to {widths.out_channels} but the input has {in_channels} "
                "channels; a HorNet block keeps its width (put a HorNetDownsampleSpec before it)"
            )
        divisor = 2 ** (self.order - 1)
        if widths.out_channels % divisor:
            raise ValueError(
                f"HorNetBlockSpec.order={self.order} needs a width divisible by {divisor}, got {widths.out_channels}; "
                "change the width multiplier"
            )

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return True  # check_widths: the block keeps its width; stride 1 only

    def build(self, block: ResolvedBlock) -> nn.Module:
        return HorNetBlock(
            block.out_channels,
            block.mid_channels,
            self.order,
            self.kernel_size,
            self.gate_scale,
            self.layer_scale_init,
        )


def gnconv_widths(channels: int, order: int) -> list[int]:
    """C_0 .. C_(n-1) = C / 2^(n-1) ... C / 2, C (the release's ``dims``)."""
    return [channels // 2**i for i in range(order)][::-1]


class RecursiveGatedConv(nn.Module):
    """gⁿConv: one 1x1 projection, one depthwise conv, n gated products, 1x1 output projection."""

    def __init__(self, channels: int, order: int, kernel_size: int = 7, scale: float = 1.0 / 3.0) -> None:
        super().__init__()
        self.widths = gnconv_widths(channels, order)
        self.scale = scale
        self.proj_in = nn.Conv2d(channels, 2 * channels, 1)
        self.depthwise = nn.Conv2d(sum(self.widths), sum(self.widths), kernel_size, padding=kernel_size // 2, groups=sum(self.widths))
        self.proj_out = nn.Conv2d(channels, channels, 1)  # registered before ``pointwise``, as in the release
        self.pointwise = nn.ModuleList(nn.Conv2d(self.widths[k], self.widths[k + 1], 1) for k in range(order - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q = torch.split(self.proj_in(x), (self.widths[0], sum(self.widths)), dim=1)  # (B, C_0, H, W), (B, sum C_k, H, W)
        gates = torch.split(self.depthwise(q) * self.scale, self.widths, dim=1)  # (B, C_k, H, W) for k = 0 .. n-1
        p = p * gates[0]  # p_1: (B, C_0, H, W)
        for pointwise, gate in zip(self.pointwise, gates[1:]):
            p = pointwise(p) * gate  # p_(k+1): (B, C_k, H, W)
        return self.proj_out(p)  # (B, C, H, W)


class HorNetBlock(nn.Module):
    def __init__(
        self,
        channels: int,
        hidden_channels: int,
        order: int,
        kernel_size: int = 7,
        gate_scale: float = 1.0 / 3.0,
        layer_scale_init: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.gnconv = RecursiveGatedConv(channels, order, kernel_size, gate_scale)
        self.layer_scale_init = layer_scale_init
        self.gamma1 = nn.Parameter(torch.full((channels,), layer_scale_init))
        self.norm2 = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(channels, hidden_channels)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_channels, channels)
        self.gamma2 = nn.Parameter(torch.full((channels,), layer_scale_init))
        init_trunc_normal(self)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        init = self.layer_scale_init
        return init_layer_scale(self.gamma1, zero_init_last, init) + init_layer_scale(self.gamma2, zero_init_last, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma1.reshape(-1, 1, 1) * self.gnconv(self.norm1(x))  # (B, C, H, W)
        y = self.norm2(x.permute(0, 2, 3, 1))  # channels-last: (B, H, W, C)
        y = self.gamma2 * self.fc2(self.act(self.fc1(y)))  # (B, H, W, 4C) -> (B, H, W, C)
        return x + y.permute(0, 3, 1, 2)  # -> (B, C, H, W)


@dataclass(frozen=True, kw_only=True)
class HorNetHeadSpec(HeadSpec):
    """Global average pool -> LayerNorm -> linear classifier (the release's ``norm`` + ``head``)."""

    kind: ClassVar[str] = "hornet_head"

    def build(self, block: ResolvedBlock) -> nn.Module:
        return HorNetHead(block.in_channels, self.num_classes)


class HorNetHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features, eps=LAYER_NORM_EPS)
        self.classifier = nn.Linear(in_features, num_classes)
        init_trunc_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x.mean((2, 3))))  # (B, C, H, W) -> (B, C) -> (B, num_classes)
