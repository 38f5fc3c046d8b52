"""EdgeNeXt blocks (Maaz et al., "EdgeNeXt: Efficiently Amalgamated CNN-Transformer Architecture for
Mobile Vision Applications", ECCV Workshops 2022, Sec. 3 and Fig. 2), as in the authors' code
(mmaaz60/EdgeNeXt, ``models/edgenext.py``, ``conv_encoder.py``, ``sdta_encoder.py``, ``layers.py``).

* Patch convs: the 4x4 stride-4 stem conv followed by a channels-first LayerNorm, and the 2x2
  stride-2 downsampling conv preceded by one.
* Conv. encoder (Fig. 2, left): depthwise k x k conv -> LayerNorm -> Linear (4x) -> GELU -> Linear,
  LayerScale, residual. Kernel sizes grow by stage (3, 5, 7, 9; Sec. 3, "adaptive kernel sizes").
* SDTA encoder (split depth-wise transposed attention, Fig. 2, right): the channels are split into
  ``num_scales`` groups; group i (i >= 1) adds the previous group's output and passes a 3x3
  depthwise conv (Res2Net-style hierarchy, the last group untouched); then (optionally) a Fourier
  positional encoding is added and transposed ("cross-covariance") attention runs across channels,
  not tokens: per head a (d x d) attention of L2-normalised queries and keys scaled by a learned
  temperature (cost linear in H x W); then a LayerNorm -> Linear (4x) -> GELU -> Linear bottleneck,
  LayerScale, residual to the block input.
* Head: global average pool -> LayerNorm -> Linear.

There is no BatchNorm anywhere (LayerNorm throughout), so the deploy form equals the train form.
SDTA blocks flatten (B, C, H, W) to (B, H*W, C) tokens inside and reshape back at their end; the
conv encoder works channels-last inside. Every block boundary carries a (B, C, H, W) map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..initialization import init_layer_scale
from ..layers import get_activation
from ..spec import check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation
from .head import HeadSpec

__all__ = [
    "EdgeNeXtPatchConvSpec",
    "EdgeNeXtConvEncoderSpec",
    "EdgeNeXtSDTASpec",
    "EdgeNeXtHeadSpec",
    "LayerNorm2d",
    "PatchConv",
    "ConvEncoder",
    "LayerScaledMlp",
    "SDTAEncoder",
    "CrossCovarianceAttention",
    "FourierPositionalEncoding",
    "EdgeNeXtHead",
    "sdta_split_widths",
]

LAYER_NORM_EPS = 1e-6  # the reference's LayerNorm eps everywhere


def sdta_split_widths(channels: int, num_scales: int) -> tuple[int, ...]:
    """Channel groups of an SDTA encoder: chunks of ceil(C / s) (the last one smaller), exactly ``num_scales`` of them."""
    width = math.ceil(channels / num_scales)
    widths = tuple(min(width, channels - start) for start in range(0, channels, width))
    if len(widths) != num_scales:
        raise ValueError(
            f"EdgeNeXtSDTASpec.num_scales={num_scales} cannot split {channels} channels into {num_scales} groups of "
            f"ceil({channels}/{num_scales})={width} (it gives {len(widths)}); change num_scales or the width"
        )
    return widths


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (the reference's ``data_format="channels_first"``)."""

    def __init__(self, channels: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)  # (B, H, W, C)
        return x.permute(0, 3, 1, 2)  # -> (B, C, H, W)


class PatchConv(nn.Module):
    """Non-overlapping p x p stride-p conv (with bias) and a LayerNorm2d before or after it."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, norm_first: bool) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm = LayerNorm2d(in_channels if norm_first else out_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            return self.conv(self.norm(x))  # (B, C, H, W) -> (B, C', H/p, W/p)
        return self.norm(self.conv(x))


class LayerScaledMlp(nn.Module):
    """s * Linear(act(Linear(LayerNorm(x)))) on channels-last (..., C) input: the inverted bottleneck of
    EdgeNeXt's encoders (ConvNeXt-style) and of EfficientFormer's Meta3D block, LayerScale included."""

    def __init__(self, channels: int, hidden: int, layer_scale_init: float, act=nn.GELU, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)
        self.expand = nn.Linear(channels, hidden)
        self.act = act() if act else nn.Identity()
        self.project = nn.Linear(hidden, channels)
        self.layer_scale_init = layer_scale_init
        self.layer_scale = nn.Parameter(torch.full((channels,), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * self.project(self.act(self.expand(self.norm(x))))  # (..., C) -> (..., hidden) -> (..., C)


class ConvEncoder(nn.Module):
    """x + s * MLP(LN(dwconv_k(x))): (B, C, H, W) -> (B, C, H, W); the MLP runs channels-last."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, layer_scale_init: float, act=nn.GELU) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.mlp = LayerScaledMlp(channels, hidden, layer_scale_init, act)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_layer_scale(self.mlp.layer_scale, zero_init_last, self.mlp.layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.depthwise(x).permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)
        return x + y.permute(0, 3, 1, 2)  # -> (B, C, H, W)


class FourierPositionalEncoding(nn.Module):
    """Sine/cosine features of normalised (y, x) positions, projected by a 1x1 conv (XCiT Sec. 3; EdgeNeXt Sec. 3).

    Batch-independent: returns (1, C, H, W) for an H x W grid, added to every image.
    """

    def __init__(self, channels: int, hidden: int = 32, temperature: float = 10000.0) -> None:
        super().__init__()
        self.hidden, self.temperature = hidden, temperature
        self.projection = nn.Conv2d(2 * hidden, channels, 1)

    def features(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        """(1, 2 * hidden, H, W): [sin, cos] interleaved of y then x, positions scaled to (0, 2 pi]."""
        options = {"dtype": torch.float32, "device": like.device}
        frequencies = self.temperature ** (2 * (torch.arange(self.hidden, **options) // 2) / self.hidden)  # (hidden,)

        def encode(length: int) -> torch.Tensor:
            positions = torch.arange(1, length + 1, **options) / (length + 1e-6) * (2 * math.pi)
            angles = positions[:, None] / frequencies  # (L, hidden)
            return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)  # (L, hidden)

        pos_y = encode(height)[:, None, :].expand(height, width, self.hidden)
        pos_x = encode(width)[None, :, :].expand(height, width, self.hidden)
        return torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)[None].to(like.dtype)  # (1, 2 * hidden, H, W)

    def forward(self, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(height, width, like))  # -> (1, C, H, W)


class CrossCovarianceAttention(nn.Module):
    """Transposed attention (XCiT's XCA): per head a (d x d) channel attention, linear in the number of tokens."""

    def __init__(self, channels: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape  # (B, N, C)
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)  # each (B, heads, d, N)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # L2 over tokens
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)  # (B, heads, d, d)
        out = (attn @ v).permute(0, 3, 1, 2).reshape(batch, tokens, channels)  # (B, heads, d, N) -> (B, N, C)
        return self.proj(out)


class SDTAEncoder(nn.Module):
    """Split depthwise convs -> [+ positional encoding] -> x + s1 * XCA(LN(x)) -> s2 * MLP(LN(.)) + input."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        num_scales: int,
        num_heads: int,
        positional_encoding: bool,
        layer_scale_init: float,
        qkv_bias: bool = True,
        act=nn.GELU,
    ) -> None:
        super().__init__()
        self.split = sdta_split_widths(channels, num_scales)
        width = self.split[0]
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, groups=width) for _ in range(num_scales - 1))
        self.positional_encoding = FourierPositionalEncoding(channels) if positional_encoding else None
        self.norm_attention = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)
        self.attention = CrossCovarianceAttention(channels, num_heads, qkv_bias)
        self.layer_scale_attention = nn.Parameter(torch.full((channels,), layer_scale_init))
        self.mlp = LayerScaledMlp(channels, hidden, layer_scale_init, act)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # the MLP's output alone is added to the block input; the attention residual sits inside that branch
        attention = init_layer_scale(self.layer_scale_attention, zero_init_last, self.mlp.layer_scale_init)
        return attention + init_layer_scale(self.mlp.layer_scale, zero_init_last, self.mlp.layer_scale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        groups = x.split(self.split, dim=1)  # num_scales x (B, C/s, H, W)
        mixed, previous = [], None
        for group, conv in zip(groups, self.convs):
            previous = conv(group if previous is None else previous + group)  # hierarchical: adds the last output
            mixed.append(previous)
        y = torch.cat(mixed + [groups[-1]], dim=1).flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
        if self.positional_encoding is not None:
            y = y + self.positional_encoding(height, width, y).flatten(2).transpose(1, 2)  # + (1, N, C)
        y = y + self.layer_scale_attention * self.attention(self.norm_attention(y))
        y = self.mlp(y)  # (B, N, C) -> (B, N, 4C) -> (B, N, C); no residual: it joins the block input below
        return x + y.transpose(1, 2).reshape(batch, channels, height, width)  # -> (B, C, H, W)


class EdgeNeXtHead(nn.Module):
    """Global average pool -> LayerNorm -> dropout -> Linear: (B, C, H, W) -> (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.norm(x.mean((2, 3)))))


# ---- specs --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EdgeNeXtPatchConvSpec(BlockSpec):
    """p x p stride-p conv with a channels-first LayerNorm after it (stem, p = 4) or before it (downsampling, p = 2)."""

    kind: ClassVar[str] = "edgenext_patch_conv"
    allowed_strides: ClassVar[tuple[int, ...]] = (2, 4)

    out_channels: int
    stride: int = 2  # = kernel size: non-overlapping patches
    norm_position: str = "before"

    def validate(self) -> None:
        super().validate()
        check_choice(self, "norm_position", ("before", "after"))

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return (input_size[0] // self.stride, input_size[1] // self.stride)  # no padding: floor

    def build(self, block: ResolvedBlock) -> nn.Module:
        return PatchConv(block.in_channels, block.out_channels, self.stride, norm_first=self.norm_position == "before")


@dataclass(frozen=True, kw_only=True)
class EdgeNeXtConvEncoderSpec(BlockSpec):
    """Conv. encoder at the input width (EdgeNeXt Fig. 2): depthwise k x k, LayerNorm, 4x MLP, LayerScale."""

    kind: ClassVar[str] = "edgenext_conv_encoder"
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    kernel_size: int = 7
    expansion_ratio: float = 4.0
    layer_scale_init: float = 1e-6
    activation: str = "gelu"
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        check(self, "kernel_size", self.kernel_size > 0 and self.kernel_size % 2 == 1, "a positive odd number")
        check_positive(self, "expansion_ratio", "layer_scale_init")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=in_channels, mid_channels=int(in_channels * self.expansion_ratio))

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return True  # keeps width and resolution; every branch is added to its input

    def build(self, block: ResolvedBlock) -> nn.Module:
        act = get_activation(self.activation)
        return ConvEncoder(block.in_channels, block.mid_channels, self.kernel_size, self.layer_scale_init, act)


@dataclass(frozen=True, kw_only=True)
class EdgeNeXtSDTASpec(BlockSpec):
    """SDTA encoder at the input width (EdgeNeXt Fig. 2): ``num_scales`` channel groups, XCA with ``num_heads``."""

    kind: ClassVar[str] = "edgenext_sdta_encoder"
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    num_scales: int  # s in the paper (reference ``d2_scales``): channel groups, s - 1 depthwise convs
    num_heads: int = 8
    positional_encoding: bool = False  # reference ``use_pos_embd_xca``
    expansion_ratio: float = 4.0
    layer_scale_init: float = 1e-6
    qkv_bias: bool = True
    activation: str = "gelu"
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        check(self, "num_scales", self.num_scales >= 2, ">= 2 (the last channel group passes untouched)")
        check_positive(self, "num_heads", "expansion_ratio", "layer_scale_init")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=in_channels, mid_channels=int(in_channels * self.expansion_ratio))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        if in_channels % self.num_heads:
            raise ValueError(
                f"EdgeNeXtSDTASpec.num_heads={self.num_heads} must divide the resolved width {in_channels}; "
                "change num_heads or the width multiplier"
            )
        sdta_split_widths(in_channels, self.num_scales)

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return True  # keeps width and resolution; every branch is added to its input

    def build(self, block: ResolvedBlock) -> nn.Module:
        return SDTAEncoder(
            block.in_channels,
            block.mid_channels,
            self.num_scales,
            self.num_heads,
            self.positional_encoding,
            self.layer_scale_init,
            self.qkv_bias,
            get_activation(self.activation),
        )


@dataclass(frozen=True, kw_only=True)
class EdgeNeXtHeadSpec(HeadSpec):
    """Global average pool -> LayerNorm -> Linear."""

    kind: ClassVar[str] = "edgenext_head"

    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        check(self, "dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)")

    def build(self, block: ResolvedBlock) -> nn.Module:
        return EdgeNeXtHead(block.in_channels, self.num_classes, self.dropout)
