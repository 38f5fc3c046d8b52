"""TRT-ViT's mixed block (Xia et al., "TRT-ViT: TensorRT-oriented Vision Transformer", arXiv 2205.09579, 2022).

The paper's networks put ResNet BottleNeck blocks in the early stages and mixed blocks in the late
ones (guideline 1: convolution early, Transformer late). Inside a mixed block a Transformer block
runs first on part of the channels (global mixing) and a BottleNeck after it (local mixing), the
two outputs concatenated (guideline 4: "early Transformer, late CNN" at block level)::

    x (B, C_in, H, W)
      -> [2x2 avg pool, stride 2] -> 1x1 conv-BN                      t: (B, C_t, H', W'), C_t = mix_ratio * C
      -> t + MHSA(LN(t)), keys/values from sr x sr average-pooled tokens (PVT's spatial reduction)
      -> t + MLP(LN(t))                                                 Linear -> GELU -> Linear, hidden mlp_ratio * C_t
      -> c = BottleNeck(t): 1x1 (C_t -> C_b) -> 3x3 (C_b) -> 1x1 (C_b -> C - C_t), conv-BN-ReLU each
      -> concat(t, c)                                                   (B, C, H', W')

RECONSTRUCTED (the paper's figure and architecture table were not available to us when this was
written, and the authors released no code): the patch embedding (average pool + 1x1 conv-BN, as in
Next-ViT by the same group), the spatial-reduction attention by average pooling, LayerNorm before
attention and MLP, the BottleNeck width C_b = (C - C_t) * bottleneck_ratio and its final ReLU are
our choices, not read from the paper. The block has no outer shortcut (its output width is the
concatenation), so ``identity_shortcut`` is False; its attention and MLP are residual inside.

Deploy form: the conv-BN pairs fold (``ConvNormAct``); LayerNorm and attention stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..initialization import init_last_layer
from ..layers import ConvNormAct
from ..layers.make_divisible import make_divisible
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock

__all__ = ["TRTViTMixBlockSpec", "TRTViTMixBlock", "SpatialReductionAttention"]


class SpatialReductionAttention(nn.Module):
    """Multi-head attention on (B, N, C) tokens; keys and values from the sr x sr average-pooled map."""

    def __init__(self, channels: int, head_dim: int, sr_ratio: int = 1) -> None:
        super().__init__()
        self.num_heads, self.sr_ratio = channels // head_dim, sr_ratio
        self.scale = head_dim**-0.5
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        batch, tokens, channels = x.shape  # (B, N, C), N = H * W
        heads = self.num_heads
        q = self.q(x).reshape(batch, tokens, heads, -1).transpose(1, 2)  # (B, h, N, d)
        reduced = x
        if self.sr_ratio > 1:
            grid = x.transpose(1, 2).reshape(batch, channels, *size)  # (B, C, H, W)
            reduced = F.avg_pool2d(grid, self.sr_ratio, ceil_mode=True).flatten(2).transpose(1, 2)  # (B, N', C)
        k, v = self.kv(reduced).reshape(batch, -1, 2, heads, channels // heads).permute(2, 0, 3, 1, 4)  # 2 x (B, h, N', d)
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (B, h, N, N')
        return self.proj((attention @ v).transpose(1, 2).reshape(batch, tokens, channels))  # (B, N, C)


class TRTViTMixBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        attention_channels: int,
        bottleneck_channels: int,
        stride: int = 1,
        head_dim: int = 32,
        sr_ratio: int = 1,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        embed: list[nn.Module] = [nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)] if stride == 2 else []
        self.patch_embed = nn.Sequential(*embed, ConvNormAct(in_channels, attention_channels, 1, act=None))
        self.norm1 = nn.LayerNorm(attention_channels)
        self.attention = SpatialReductionAttention(attention_channels, head_dim, sr_ratio)
        self.norm2 = nn.LayerNorm(attention_channels)
        hidden = int(attention_channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(attention_channels, hidden), nn.GELU(), nn.Linear(hidden, attention_channels))
        self.bottleneck = nn.Sequential(
            ConvNormAct(attention_channels, bottleneck_channels, 1),
            ConvNormAct(bottleneck_channels, bottleneck_channels, 3),
            ConvNormAct(bottleneck_channels, out_channels - attention_channels, 1),
        )

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # the attention and MLP residuals end in bare linears (no norm, no layer scale)
        return init_last_layer(self.attention.proj, zero_init_last) + init_last_layer(self.mlp[-1], zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x)  # (B, C_in, H, W) -> (B, C_t, H', W')
        batch, channels, height, width = t.shape
        tokens = t.flatten(2).transpose(1, 2)  # (B, N, C_t)
        tokens = tokens + self.attention(self.norm1(tokens), (height, width))  # global first
        tokens = tokens + self.mlp(self.norm2(tokens))
        t = tokens.transpose(1, 2).reshape(batch, channels, height, width)
        return torch.cat([t, self.bottleneck(t)], dim=1)  # local after: (B, C_t + C - C_t, H', W')


@dataclass(frozen=True, kw_only=True)
class TRTViTMixBlockSpec(BlockSpec):
    """Mixed block; ``mid_channels`` = C_t (attention width), ``se_channels`` = C_b (the BottleNeck's width)."""

    kind: ClassVar[str] = "trtvit_mix_block"

    out_channels: int
    stride: int = 1
    mix_ratio: float = 0.5  # C_t / C
    head_dim: int = 32
    sr_ratio: int = 1  # keys/values from sr x sr pooled tokens
    mlp_ratio: float = 2.0
    bottleneck_ratio: float = 0.25  # C_b / (C - C_t)

    def validate(self) -> None:
        super().validate()
        check(self, "mix_ratio", 0.0 < self.mix_ratio < 1.0, "in (0, 1) (both the attention and the BottleNeck part need channels)")
        check_positive(self, "head_dim", "sr_ratio", "mlp_ratio", "bottleneck_ratio")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        attention = make_divisible(out * self.mix_ratio, self.head_dim)  # whole heads
        bottleneck = max(1, int((out - attention) * self.bottleneck_ratio))
        return BlockWidths(out_channels=out, mid_channels=attention, se_channels=bottleneck)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        if widths.mid_channels >= widths.out_channels:
            raise ValueError(
                f"TRTViTMixBlockSpec: the attention width {widths.mid_channels} (mix_ratio x out_channels, whole heads of "
                f"{self.head_dim}) leaves no channels for the BottleNeck of a {widths.out_channels}-wide block; "
                "lower mix_ratio or head_dim, or widen the block"
            )

    def build(self, block: ResolvedBlock) -> nn.Module:
        return TRTViTMixBlock(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            block.se_channels,
            self.stride,
            self.head_dim,
            self.sr_ratio,
            self.mlp_ratio,
        )
