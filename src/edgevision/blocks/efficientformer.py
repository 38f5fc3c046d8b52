"""EfficientFormer blocks (Li et al., "EfficientFormer: Vision Transformers at MobileNet Speed",
NeurIPS 2022, Sec. 3 and Fig. 3), as in the authors' code (snap-research/EfficientFormer,
``models/efficientformer.py``).

* Meta4D (the "4D" stages on (B, C, H, W) maps): a pooling token mixer ``avgpool3x3(x) - x`` and
  an MLP of two 1x1 Conv+BN with GELU between, each branch scaled by a LayerScale vector.
* Meta3D (the last blocks of stage 4, on tokens): pre-LayerNorm multi-head self-attention with
  LeViT's attention bias (``LevitAttention`` with plain Linear layers; key width 32, 8 heads, value
  width 4 x 32; the bias table is built from the resolved H x W, 7 x 7 at 224) and a pre-LayerNorm
  linear MLP (``LayerScaledMlp``, shared with EdgeNeXt), both LayerScaled.
* Patch embeddings: the stem's two 3x3 stride-2 Conv+BN+ReLU and the 3x3 stride-2 Conv+BN between
  stages; these convs keep their bias before BatchNorm, as in the reference code.
* Head: LayerNorm on tokens, mean over tokens, Linear, plus the distillation head of the released
  models (outputs averaged at inference).

Meta3D blocks flatten (B, C, H, W) to (B, H*W, C) tokens inside and reshape back at their end, so
every block boundary carries a (B, C, H, W) map. Deploy form: every BatchNorm folds into its conv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_layer_scale
from ..layers import ConvNormAct, get_activation
from ..spec import check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation
from .conv import pooled_size
from .edgenext import LayerScaledMlp
from .levit import DistilledHeadSpec, LevitAttention

__all__ = [
    "EfficientFormerEmbeddingSpec",
    "EfficientFormerMeta4DSpec",
    "EfficientFormerMeta3DSpec",
    "EfficientFormerHeadSpec",
    "Meta4DBlock",
    "Meta3DBlock",
    "EfficientFormerHead",
]


class Meta4DBlock(nn.Module):
    """x + s1 * (avgpool(x) - x); x + s2 * MLP(x) with 1x1 Conv+BN layers: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self, channels: int, hidden: int, pool_size: int, layer_scale_init: float, act: Callable[[], nn.Module] | None
    ) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)
        self.expand = ConvNormAct(channels, hidden, 1, act=act, bias=True)  # the reference's convs keep their bias
        self.project = ConvNormAct(hidden, channels, 1, act=None, bias=True)
        self.layer_scale_init = layer_scale_init
        self.layer_scale_mixer = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init))
        self.layer_scale_mlp = nn.Parameter(torch.full((channels, 1, 1), layer_scale_init))

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        init = self.layer_scale_init
        return init_layer_scale(self.layer_scale_mixer, zero_init_last, init) + init_layer_scale(self.layer_scale_mlp, zero_init_last, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale_mixer * (self.pool(x) - x)  # pooling token mixer (PoolFormer)
        return x + self.layer_scale_mlp * self.project(self.expand(x))  # (B, C, H, W) -> (B, 4C, H, W) -> (B, C, H, W)


class Meta3DBlock(nn.Module):
    """x + s1 * Attention(LN(x)); x + s2 * MLP(LN(x)) on tokens: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self,
        channels: int,
        hidden: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        input_size: tuple[int, int],
        layer_scale_init: float,
        act: Callable[[], nn.Module] | None,
    ) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(channels)
        # LeViT's attention with plain Linear layers (bias, no BatchNorm) and no activation before the projection
        self.attention = LevitAttention(channels, channels, key_dim, num_heads, attn_ratio, input_size, act=None, linear=nn.Linear)
        self.layer_scale_attention = nn.Parameter(torch.full((channels,), layer_scale_init))
        self.mlp = LayerScaledMlp(channels, hidden, layer_scale_init, act, eps=1e-5)  # nn.LayerNorm's default eps

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        init = self.mlp.layer_scale_init
        return init_layer_scale(self.layer_scale_attention, zero_init_last, init) + init_layer_scale(self.mlp.layer_scale, zero_init_last, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
        tokens = tokens + self.layer_scale_attention * self.attention(self.norm_attention(tokens), (height, width))
        tokens = tokens + self.mlp(tokens)  # pre-LN MLP, LayerScaled
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)  # -> (B, C, H, W)


class EfficientFormerHead(nn.Module):
    """LayerNorm over channels -> mean over tokens -> Linear; with distillation the two heads' average.

    In training the reference returns both logits for the distillation loss (:meth:`forward_heads`);
    ``forward`` returns their average in every mode (the inference output).
    """

    def __init__(self, in_features: int, num_classes: int, distillation: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_features)
        self.classifier = nn.Linear(in_features, num_classes)
        self.distillation_classifier = nn.Linear(in_features, num_classes) if distillation else None

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pooled = self.norm(x.flatten(2).transpose(1, 2)).mean(1)  # (B, C, H, W) -> (B, N, C) -> (B, C)
        if self.distillation_classifier is None:
            return (self.classifier(pooled),)
        return self.classifier(pooled), self.distillation_classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.forward_heads(x)
        return logits[0] if len(logits) == 1 else (logits[0] + logits[1]) / 2  # -> (B, num_classes)


# ---- specs --------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EfficientFormerEmbeddingSpec(BlockSpec):
    """k x k Conv (with bias) -> BatchNorm -> activation: the stem convs (ReLU) and the downsampling embeddings (none)."""

    kind: ClassVar[str] = "efficientformer_embedding"

    out_channels: int
    kernel_size: int = 3
    stride: int = 2
    activation: str = "identity"

    def validate(self) -> None:
        super().validate()
        check(self, "kernel_size", self.kernel_size > 0 and self.kernel_size % 2 == 1, "a positive odd number")
        check_activation(self)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return pooled_size(input_size, self.kernel_size, self.stride, "same")

    def build(self, block: ResolvedBlock) -> nn.Module:
        act = get_activation(self.activation)
        return ConvNormAct(block.in_channels, block.out_channels, self.kernel_size, self.stride, act=act, bias=True)


@dataclass(frozen=True, kw_only=True)
class EfficientFormerMeta4DSpec(BlockSpec):
    """Pooling mixer + Conv-BN MLP at the input width (EfficientFormer Fig. 3, MB^4D)."""

    kind: ClassVar[str] = "efficientformer_meta4d"
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    pool_size: int = 3
    mlp_ratio: float = 4.0
    layer_scale_init: float = 1e-5
    activation: str = "gelu"
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        check_choice(self, "pool_size", (3, 5, 7))
        check_positive(self, "mlp_ratio", "layer_scale_init")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=in_channels, mid_channels=int(in_channels * self.mlp_ratio))

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return True  # keeps width and resolution; every branch is added to its input

    def build(self, block: ResolvedBlock) -> nn.Module:
        act = get_activation(self.activation)
        return Meta4DBlock(block.in_channels, block.mid_channels, self.pool_size, self.layer_scale_init, act)


@dataclass(frozen=True, kw_only=True)
class EfficientFormerMeta3DSpec(BlockSpec):
    """Pre-LN attention with attention bias + pre-LN linear MLP at the input width (EfficientFormer Fig. 3, MB^3D)."""

    kind: ClassVar[str] = "efficientformer_meta3d"
    fixed_input_size: ClassVar[bool] = True  # attention bias per token pair of the resolved grid
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    key_dim: int = 32
    num_heads: int = 8
    attn_ratio: float = 4.0  # value width per head = attn_ratio * key_dim
    mlp_ratio: float = 4.0
    layer_scale_init: float = 1e-5
    activation: str = "gelu"
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        check_positive(self, "key_dim", "num_heads", "attn_ratio", "mlp_ratio", "layer_scale_init")
        check(self, "attn_ratio", float(self.attn_ratio * self.key_dim).is_integer(), "such that attn_ratio * key_dim is a whole number")
        check_activation(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=in_channels, mid_channels=int(in_channels * self.mlp_ratio))

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return True  # keeps width and resolution; every branch is added to its input

    def build(self, block: ResolvedBlock) -> nn.Module:
        return Meta3DBlock(
            block.in_channels,
            block.mid_channels,
            self.key_dim,
            self.num_heads,
            self.attn_ratio,
            block.input_size,
            self.layer_scale_init,
            get_activation(self.activation),
        )


@dataclass(frozen=True, kw_only=True)
class EfficientFormerHeadSpec(DistilledHeadSpec):
    """LayerNorm on tokens -> mean -> Linear, twice with ``distillation`` (the released models)."""

    kind: ClassVar[str] = "efficientformer_head"

    def build(self, block: ResolvedBlock) -> nn.Module:
        return EfficientFormerHead(block.in_channels, self.num_classes, self.distillation)
