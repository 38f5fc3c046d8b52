"""LeViT blocks (Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster
Inference", ICCV 2021, Sec. 4.2 "LeViT components", Fig. 4), as in the authors' code
(facebookresearch/LeViT, ``levit.py``).

* Normalization layers: every linear layer is a Linear without bias followed by BatchNorm1d,
  which folds into one Linear with bias in the deploy form (the reference ``Linear_BN.fuse``).
* Attention bias: attention adds a learned bias per head and per relative offset (|dy|, |dx|)
  between a query and a key position. The table size depends on the resolution, so it is built
  from the resolved block's input H x W (:class:`AttentionBias`).
* Downsampling: the shrinking attention block takes its queries from a stride-2 subsampled grid,
  widens the channels and has no residual connection; the value width is ``attn_ratio * key_dim``
  per head (4 in the shrinking block, 2 elsewhere: "smaller keys"), and the attention output
  passes a Hardswish before its projection ("attention activation").
* The classifier keeps the released distillation head (DeiT-style): two BatchNorm1d -> Linear
  heads on the pooled features whose outputs are averaged at inference.

Blocks exchange (B, C, H, W) maps; each block flattens to (B, H*W, C) tokens inside and reshapes
back at its end.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import fold_batchnorm, get_activation
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation
from .head import HeadSpec

__all__ = [
    "LevitBlockSpec",
    "LevitSubsampleSpec",
    "LevitHeadSpec",
    "DistilledHeadSpec",
    "LevitAttention",
    "LevitBlock",
    "LevitSubsampleBlock",
    "LevitHead",
    "LinearNorm",
    "NormLinear",
    "attention_bias_index",
    "AttentionBias",
]


@functools.lru_cache(maxsize=64)
def _relative_offsets(key_size: tuple[int, int], stride: int) -> tuple[tuple[int, int], ...]:
    """(|qy * stride - ky|, |qx * stride - kx|) for every (query, key) pair, queries on the stride-s grid, row-major."""
    query_size = (math.ceil(key_size[0] / stride), math.ceil(key_size[1] / stride))
    return tuple(
        (abs(qy * stride - ky), abs(qx * stride - kx))
        for qy, qx in itertools.product(range(query_size[0]), range(query_size[1]))
        for ky, kx in itertools.product(range(key_size[0]), range(key_size[1]))
    )


def attention_bias_index(key_size: tuple[int, int], stride: int = 1) -> tuple[int, torch.Tensor]:
    """Relative-position table of LeViT's attention bias: (number of distinct offsets, (Nq, Nk) index).

    Query (qy, qx) sits at (qy * stride, qx * stride) of the H x W key grid; its offset to key
    (ky, kx) is (|qy * stride - ky|, |qx * stride - kx|). Offsets are numbered in order of first
    appearance, as in the reference code. A 14 x 14 grid has 196 offsets and a (196, 196) index;
    queries on its stride-2 7 x 7 grid have 196 offsets too (|2 qy - ky| takes 14 values) and a (49, 196) index.
    """
    columns: dict[tuple[int, int], int] = {}
    index = [columns.setdefault(offset, len(columns)) for offset in _relative_offsets(tuple(key_size), stride)]
    return len(columns), torch.tensor(index, dtype=torch.long).view(-1, key_size[0] * key_size[1])


class AttentionBias(nn.Module):
    """A learned bias per head and per relative offset (LeViT Sec. 4.3), as a (heads, Nq, Nk) tensor.

    The table is sized for the resolved key grid ``key_size`` (the block's input H x W). A smaller
    grid at run time uses the subset of the same offsets (every offset of a smaller grid exists in
    the larger one); a larger grid has offsets the table never learned and is refused.
    """

    def __init__(self, num_heads: int, key_size: tuple[int, int], stride: int = 1) -> None:
        super().__init__()
        self.key_size, self.stride = tuple(key_size), stride
        num_offsets, index = attention_bias_index(self.key_size, stride)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, num_offsets))
        self.register_buffer("index", index, persistent=False)
        self._other_sizes: dict[tuple[int, int], torch.Tensor] = {}

    def forward(self, key_size: tuple[int, int]) -> torch.Tensor:
        key_size = (int(key_size[0]), int(key_size[1]))
        index = self.index if key_size == self.key_size else self._index_for(key_size)
        return self.attention_biases[:, index]  # (heads, Nq, Nk)

    def _index_for(self, key_size: tuple[int, int]) -> torch.Tensor:
        if key_size[0] > self.key_size[0] or key_size[1] > self.key_size[1]:
            raise ValueError(
                f"attention bias built for a {self.key_size[0]}x{self.key_size[1]} grid cannot serve "
                f"{key_size[0]}x{key_size[1]}; build the network at this resolution (ev.resolve(spec, input_size=...))"
            )
        if key_size not in self._other_sizes:
            columns: dict[tuple[int, int], int] = {}
            for offset, column in zip(_relative_offsets(self.key_size, self.stride), self.index.flatten().tolist()):
                columns.setdefault(offset, column)
            index = [columns[offset] for offset in _relative_offsets(key_size, self.stride)]
            self._other_sizes[key_size] = torch.tensor(index, dtype=torch.long).view(-1, key_size[0] * key_size[1])
        return self._other_sizes[key_size].to(self.attention_biases.device)


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W, C)


def _to_map(tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *size)  # (B, H*W, C) -> (B, C, H, W)


# ---- primitives ---------------------------------------------------------------------------
class LinearNorm(nn.Module):
    """Linear (no bias) -> BatchNorm1d on (B, N, C) tokens; ``reparameterize()`` makes it one Linear with bias."""

    def __init__(self, in_features: int, out_features: int, norm_weight_init: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.norm: nn.Module = nn.BatchNorm1d(out_features)
        nn.init.constant_(self.norm.weight, norm_weight_init)  # 0 on residual branches' last layer (reference code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)  # (B, N, C_in) -> (B, N, C_out)
        return self.norm(x.flatten(0, 1)).reshape_as(x)  # BatchNorm over C, statistics over B * N

    @torch.no_grad()
    def reparameterize(self) -> None:
        if not isinstance(self.norm, nn.BatchNorm1d):
            return
        weight, bias = fold_batchnorm(self.linear.weight, None, self.norm)
        self.linear = nn.Linear(weight.shape[1], weight.shape[0]).to(weight)
        self.linear.weight.copy_(weight)
        self.linear.bias.copy_(bias)
        self.norm = nn.Identity()


class NormLinear(nn.Module):
    """BatchNorm1d -> Linear on (B, C) features; the BatchNorm folds into the Linear's input side."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm1d(in_features)
        self.linear = nn.Linear(in_features, out_features)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))  # (B, C) -> (B, out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """W (s x + t) + b = (W diag(s)) x + (W t + b), with s = gamma / sqrt(var + eps), t = beta - mean * s."""
        if not isinstance(self.norm, nn.BatchNorm1d):
            return
        scale = self.norm.weight / torch.sqrt(self.norm.running_var + self.norm.eps)
        shift = self.norm.bias - self.norm.running_mean * scale
        self.linear.bias.copy_(self.linear.weight @ shift + self.linear.bias)
        self.linear.weight.mul_(scale[None, :])
        self.norm = nn.Identity()


class TokenMlp(nn.Module):
    """LinearNorm -> activation -> LinearNorm (its BatchNorm starts at 0, so the residual branch starts silent)."""

    def __init__(self, channels: int, hidden: int, act: Callable[[], nn.Module] | None) -> None:
        super().__init__()
        self.expand = LinearNorm(channels, hidden)
        self.act = act() if act else nn.Identity()
        self.project = LinearNorm(hidden, channels, norm_weight_init=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.act(self.expand(x)))  # (B, N, C) -> (B, N, hidden) -> (B, N, C)


class LevitAttention(nn.Module):
    """Multi-head attention with LeViT's attention bias; with ``stride=2`` the queries come from a subsampled grid.

    Per head: key/query width ``key_dim``, value width ``int(attn_ratio * key_dim)``; the concatenated
    values pass ``act`` and a projection to ``out_features``. ``linear`` makes the projections:
    :class:`LinearNorm` in LeViT, a plain ``nn.Linear`` (with bias) in EfficientFormer's Meta3D.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        input_size: tuple[int, int],
        stride: int = 1,
        act: Callable[[], nn.Module] | None = nn.Hardswish,
        linear: Callable[[int, int], nn.Module] = LinearNorm,
    ) -> None:
        super().__init__()
        self.key_dim, self.num_heads, self.stride = key_dim, num_heads, stride
        self.value_dim = int(attn_ratio * key_dim)
        self.scale = key_dim**-0.5
        if stride == 1:
            self.qkv = linear(in_features, num_heads * (2 * key_dim + self.value_dim))
        else:
            self.kv = linear(in_features, num_heads * (key_dim + self.value_dim))
            self.q = linear(in_features, num_heads * key_dim)
        self.act = act() if act else nn.Identity()
        self.proj = linear(num_heads * self.value_dim, out_features)
        if stride == 1 and isinstance(self.proj, LinearNorm):  # residual branch starts silent (reference init)
            nn.init.zeros_(self.proj.norm.weight)
        self.bias = AttentionBias(num_heads, input_size, stride)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        batch, tokens, _ = x.shape  # (B, N, C_in), N = H * W = size
        heads = self.num_heads
        if self.stride == 1:
            q, k, v = self.qkv(x).view(batch, tokens, heads, -1).split([self.key_dim, self.key_dim, self.value_dim], dim=3)
        else:
            k, v = self.kv(x).view(batch, tokens, heads, -1).split([self.key_dim, self.value_dim], dim=3)
            grid = x.reshape(batch, size[0], size[1], -1)[:, :: self.stride, :: self.stride]  # (B, H', W', C_in)
            q = self.q(grid.reshape(batch, -1, grid.shape[-1])).view(batch, -1, heads, self.key_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, N or N', d)
        bias = self.bias(size)  # (heads, N', N), N' = H' * W' = ceil(H / s) * ceil(W / s)
        attn = ((q @ k.transpose(-2, -1)) * self.scale + bias).softmax(dim=-1)  # (B, heads, N', N)
        out = (attn @ v).transpose(1, 2).reshape(batch, q.shape[2], heads * self.value_dim)  # (B, N', heads * d_v)
        return self.proj(self.act(out))  # -> (B, N', C_out)


class LevitBlock(nn.Module):
    """Residual attention then residual MLP at constant width: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self,
        channels: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        mlp_hidden: int,
        input_size: tuple[int, int],
        act: Callable[[], nn.Module] | None = nn.Hardswish,
    ) -> None:
        super().__init__()
        self.attention = LevitAttention(channels, channels, key_dim, num_heads, attn_ratio, input_size, 1, act)
        self.mlp = TokenMlp(channels, mlp_hidden, act)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # the reference code already starts both at 0 (bn_weight_init=0); zero_init_last=False gives gamma = 1
        return init_last_norm(self.attention.proj.norm, zero_init_last) + init_last_norm(self.mlp.project.norm, zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = _to_tokens(x)  # (B, C, H, W) -> (B, H*W, C)
        tokens = tokens + self.attention(tokens, x.shape[2:])
        tokens = tokens + self.mlp(tokens)
        return _to_map(tokens, x.shape[2:])  # -> (B, C, H, W)


class LevitSubsampleBlock(nn.Module):
    """Shrink attention (no residual, queries on a stride-2 grid) then residual MLP: (B, C, H, W) -> (B, C', H/2, W/2)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        key_dim: int,
        num_heads: int,
        attn_ratio: float,
        mlp_hidden: int,
        input_size: tuple[int, int],
        stride: int = 2,
        act: Callable[[], nn.Module] | None = nn.Hardswish,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.attention = LevitAttention(in_channels, out_channels, key_dim, num_heads, attn_ratio, input_size, stride, act)
        self.mlp = TokenMlp(out_channels, mlp_hidden, act)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        return init_last_norm(self.mlp.project.norm, zero_init_last)  # the residual MLP after the shrink attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        tokens = self.attention(_to_tokens(x), (height, width))  # (B, H*W, C) -> (B, H'*W', C')
        tokens = tokens + self.mlp(tokens)
        # ceil(H / stride) written with non-negative operands: traced into ONNX, integer Div truncates toward zero,
        # so the usual -(-H // s) would become floor (7x7 -> 3x3 instead of 4x4 at 224)
        stride = self.stride
        return _to_map(tokens, ((height + stride - 1) // stride, (width + stride - 1) // stride))  # -> (B, C', H', W')


class LevitHead(nn.Module):
    """Pool -> BatchNorm1d -> Linear; with distillation, the average of the class and distillation heads.

    In training the reference returns both logits for the distillation loss; :meth:`forward_heads`
    gives them. ``forward`` returns their average in every mode (the inference output).
    """

    def __init__(self, in_features: int, num_classes: int, distillation: bool = True) -> None:
        super().__init__()
        self.classifier = NormLinear(in_features, num_classes)
        self.distillation_classifier = NormLinear(in_features, num_classes) if distillation else None

    def forward_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pooled = x.mean((2, 3))  # (B, C, H, W) -> (B, C): mean over tokens
        if self.distillation_classifier is None:
            return (self.classifier(pooled),)
        return self.classifier(pooled), self.distillation_classifier(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.forward_heads(x)
        return logits[0] if len(logits) == 1 else (logits[0] + logits[1]) / 2  # -> (B, num_classes)


# ---- specs --------------------------------------------------------------------------------
def _check_attention(spec: BlockSpec) -> None:
    check_positive(spec, "key_dim", "num_heads", "attn_ratio", "mlp_ratio")
    check(spec, "attn_ratio", float(spec.attn_ratio * spec.key_dim).is_integer(), "such that attn_ratio * key_dim is a whole number")  # type: ignore[attr-defined]
    check_activation(spec)


@dataclass(frozen=True, kw_only=True)
class LevitBlockSpec(BlockSpec):
    """Residual attention + residual MLP at the input width (LeViT Fig. 4). Attention bias from the resolved H x W."""

    kind: ClassVar[str] = "levit_block"
    fixed_input_size: ClassVar[bool] = True  # attention bias per token pair of the resolved grid
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    key_dim: int  # D in the paper's Table 3 / reference ``specification``
    num_heads: int
    attn_ratio: float = 2.0  # value width per head = attn_ratio * key_dim
    mlp_ratio: float = 2.0  # MLP hidden width = mlp_ratio * channels
    activation: str = "hard_swish"
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        _check_attention(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=in_channels, mid_channels=int(in_channels * self.mlp_ratio))

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return True  # attention and MLP residuals at the input width and resolution

    def build(self, block: ResolvedBlock) -> nn.Module:
        return LevitBlock(
            block.in_channels,
            self.key_dim,
            self.num_heads,
            self.attn_ratio,
            block.mid_channels,
            block.input_size,
            get_activation(self.activation),
        )


@dataclass(frozen=True, kw_only=True)
class LevitSubsampleSpec(BlockSpec):
    """Shrink attention to ``out_channels`` at stride 2, then a residual MLP (LeViT Sec. 4.3, Fig. 4)."""

    kind: ClassVar[str] = "levit_attention_subsample"
    fixed_input_size: ClassVar[bool] = True  # attention bias per token pair of the resolved grid
    allowed_strides: ClassVar[tuple[int, ...]] = (2,)

    out_channels: int
    key_dim: int
    num_heads: int  # the reference uses in_channels // key_dim
    attn_ratio: float = 4.0
    mlp_ratio: float = 2.0
    activation: str = "hard_swish"
    stride: int = 2

    def validate(self) -> None:
        super().validate()
        _check_attention(self)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=int(out * self.mlp_ratio))

    def build(self, block: ResolvedBlock) -> nn.Module:
        return LevitSubsampleBlock(
            block.in_channels,
            block.out_channels,
            self.key_dim,
            self.num_heads,
            self.attn_ratio,
            block.mid_channels,
            block.input_size,
            self.stride,
            get_activation(self.activation),
        )


@dataclass(frozen=True, kw_only=True)
class DistilledHeadSpec(HeadSpec):
    """What the DeiT-style heads share (LeViT, EfficientFormer): classes, an optional distillation head, no stride."""

    distillation: bool = True  # a second classifier trained against a teacher; the two are averaged at inference


@dataclass(frozen=True, kw_only=True)
class LevitHeadSpec(DistilledHeadSpec):
    """Mean over tokens -> BatchNorm1d -> Linear, twice with ``distillation`` (the released models)."""

    kind: ClassVar[str] = "levit_head"

    def build(self, block: ResolvedBlock) -> nn.Module:
        return LevitHead(block.in_channels, self.num_classes, self.distillation)
