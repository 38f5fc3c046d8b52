"""Next-ViT blocks (Li et al., "Next-ViT: Next Generation Vision Transformer for Efficient Deployment in
Realistic Industrial Scenarios", 2022: NCB, NTB and the Next Hybrid Strategy).

Next Convolution Block (NCB), C channels:

    x = PatchEmbed(x)                   2x2 avg pool (stride 2 only) -> 1x1 conv -> BN, where shape changes
    x = x + MHCA(x)                     multi-head convolutional attention: 3x3 group conv (head dim 32 per
                                        group) -> BN -> ReLU -> 1x1 projection
    x = x + MLP(BN(x))                  1x1 -> ReLU -> 1x1, hidden make_divisible(3C, 32)

Next Transformer Block (NTB), C channels split into C_s = make_divisible(0.75 C, 32) and C - C_s:

    x = PatchEmbed(x)                                     -> (B, C_s, H, W)
    x = x + E-MHSA(BN(x))                                 efficient multi-head self-attention, head dim 32;
                                                          keys/values from the tokens average-pooled
                                                          sr^2 at a time (spatial reduction) -> BN
    y = PatchEmbed(x) ; y = y + MHCA(y)                   1x1 conv + BN to C - C_s channels, then MHCA
    x = concat[x, y]                                      -> (B, C, H, W)
    x = x + MLP(BN(x))                                    hidden make_divisible(2C, 32)

Blocks exchange NCHW tensors; E-MHSA flattens to (B, HW, C) tokens inside the block and reshapes back.
The spatial reduction pools *consecutive tokens in raster order* (``AvgPool1d(sr^2)``), as the
authors' release does, not sr x sr windows. Deploy form (the release's ``merge_bn``): every
pre-norm BN is an affine map in eval mode and folds into the linear/1x1 layer that follows it
(the NCB/NTB MLP's first conv; q, k, v, where k and v also absorb the spatial-reduction BN, since
average pooling commutes with a per-channel affine map); every conv + BN folds as usual, and the
network's last BN folds into the classifier. Layout and initial values follow the release
(bytedance/Next-ViT ``classification/nextvit.py``, ``utils.merge_pre_bn``). Drop path is not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..initialization import init_last_layer
from ..layers import ConvNormAct, make_divisible
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, keeps_shape
from .head import HeadSpec
from .hornet import init_trunc_normal

__all__ = [
    "NextConvBlockSpec",
    "NextTransformerBlockSpec",
    "NextViTHeadSpec",
    "NextConvBlock",
    "NextTransformerBlock",
    "NextViTHead",
    "EfficientMultiHeadSelfAttention",
    "MultiHeadConvAttention",
    "fold_preceding_affine",
    "batchnorm_affine",
]

WIDTH_DIVISOR = 32  # the release rounds MLP hidden widths and the NTB's attention width to multiples of 32


# ---- BN folding into the *following* layer ---------------------------------------------------
def batchnorm_affine(norm: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode BatchNorm: scale = gamma / sqrt(var + eps), shift = beta - mean * scale."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


@torch.no_grad()
def fold_preceding_affine(layer: nn.Linear | nn.Conv2d, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Rewrite ``layer`` in place so that ``layer(x) == old_layer(x * scale + shift)`` (per input channel).

    W' = W diag(scale), b' = b + W shift. ``layer`` is a Linear or a 1x1 conv without groups
    (a padded k x k conv would see the shift at the zero-padded border too).
    """
    weight = layer.weight
    if isinstance(layer, nn.Conv2d) and (layer.kernel_size != (1, 1) or layer.groups != 1):
        raise ValueError(f"fold_preceding_affine needs a 1x1 conv without groups, got {layer}")
    matrix = weight.reshape(weight.shape[0], weight.shape[1])  # (O, I)
    bias = matrix @ shift if layer.bias is None else layer.bias + matrix @ shift
    layer.weight = nn.Parameter((matrix * scale.reshape(1, -1)).reshape(weight.shape))
    layer.bias = nn.Parameter(bias)


# ---- modules ------------------------------------------------------------------------------------
class PatchEmbed(nn.Sequential):
    """[2x2 avg pool, stride 2] -> 1x1 conv -> BN where stride or width changes, else the identity."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        layers: list[nn.Module] = []
        if stride == 2:  # ceil_mode: odd sizes keep their last row/column, averaged over the valid pixels
            layers.append(nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False))
        if stride == 2 or in_channels != out_channels:
            layers.append(ConvNormAct(in_channels, out_channels, 1, act=None))
        super().__init__(*layers)


class MultiHeadConvAttention(nn.Module):
    """MHCA: 3x3 group conv with ``head_dim`` channels per group -> BN -> ReLU -> 1x1 projection."""

    def __init__(self, channels: int, head_dim: int = 32) -> None:
        super().__init__()
        self.group_conv = ConvNormAct(channels, channels, 3, groups=channels // head_dim, act=nn.ReLU)
        self.projection = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.group_conv(x))  # (B, C, H, W) -> (B, C, H, W)


class ConvMlp(nn.Module):
    """1x1 conv -> ReLU -> 1x1 conv, both with bias."""

    def __init__(self, channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # (B, C, H, W) -> (B, hidden, H, W) -> (B, C, H, W)


class NextConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, stride: int = 1, head_dim: int = 32) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, out_channels, stride)
        self.mhca = MultiHeadConvAttention(out_channels, head_dim)
        self.norm = nn.BatchNorm2d(out_channels)
        self.mlp = ConvMlp(out_channels, hidden_channels)
        init_trunc_normal(self)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # both residual branches end in a bare conv (no norm or layer scale in the release)
        return init_last_layer(self.mhca.projection, zero_init_last) + init_last_layer(self.mlp.fc2, zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C_in, H, W) -> (B, C, H/s, W/s)
        x = x + self.mhca(x)
        return x + self.mlp(self.norm(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the pre-MLP BN into the MLP's first 1x1 conv (release: ``NCB.merge_bn``)."""
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            fold_preceding_affine(self.mlp.fc1, *batchnorm_affine(self.norm))
            self.norm = nn.Identity()


class EfficientMultiHeadSelfAttention(nn.Module):
    """E-MHSA on tokens (B, N, C): keys/values from sr^2-token average pools (+ BN) when sr > 1."""

    def __init__(self, channels: int, head_dim: int = 32, sr_ratio: int = 1) -> None:
        super().__init__()
        self.num_heads = channels // head_dim
        self.scale = head_dim**-0.5
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.proj = nn.Linear(channels, channels)
        self.pool: nn.Module = nn.Identity()
        self.pool_norm: nn.Module = nn.Identity()
        if sr_ratio > 1:
            self.pool = nn.AvgPool1d(sr_ratio**2, stride=sr_ratio**2)
            self.pool_norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape  # (B, N, C)
        heads = self.num_heads
        q = self.q(x).reshape(batch, tokens, heads, -1).transpose(1, 2)  # (B, h, N, d)
        reduced = self.pool_norm(self.pool(x.transpose(1, 2))).transpose(1, 2)  # (B, N / sr^2, C)
        k = self.k(reduced).reshape(batch, -1, heads, channels // heads).transpose(1, 2)  # (B, h, N', d)
        v = self.v(reduced).reshape(batch, -1, heads, channels // heads).transpose(1, 2)  # (B, h, N', d)
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)  # (B, h, N, N')
        out = (attention @ v).transpose(1, 2).reshape(batch, tokens, channels)  # (B, N, C)
        return self.proj(out)


class NextTransformerBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        attention_channels: int,
        hidden_channels: int,
        stride: int = 1,
        sr_ratio: int = 1,
        head_dim: int = 32,
    ) -> None:
        super().__init__()
        conv_channels = out_channels - attention_channels
        self.patch_embed = PatchEmbed(in_channels, attention_channels, stride)
        self.norm1 = nn.BatchNorm2d(attention_channels)
        self.e_mhsa = EfficientMultiHeadSelfAttention(attention_channels, head_dim, sr_ratio)
        self.projection = PatchEmbed(attention_channels, conv_channels)
        self.mhca = MultiHeadConvAttention(conv_channels, head_dim)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.mlp = ConvMlp(out_channels, hidden_channels)
        init_trunc_normal(self)

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # residual branches inside the block (E-MHSA, MHCA, MLP); the block itself has no identity shortcut
        branches = (self.e_mhsa.proj, self.mhca.projection, self.mlp.fc2)
        return tuple(p for layer in branches for p in init_last_layer(layer, zero_init_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, C_in, H, W) -> (B, C_s, H/s, W/s)
        batch, channels, height, width = x.shape
        tokens = self.norm1(x).flatten(2).transpose(1, 2)  # (B, HW, C_s)
        x = x + self.e_mhsa(tokens).transpose(1, 2).reshape(batch, channels, height, width)
        y = self.projection(x)  # (B, C - C_s, H, W)
        x = torch.cat([x, y + self.mhca(y)], dim=1)  # (B, C, H, W)
        return x + self.mlp(self.norm2(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold norm1 into q, k, v (k, v also the pooled tokens' BN) and norm2 into the MLP (``NTB.merge_bn``)."""
        if not isinstance(self.norm1, nn.modules.batchnorm._BatchNorm):
            return
        scale, shift = batchnorm_affine(self.norm1)
        attention = self.e_mhsa
        fold_preceding_affine(attention.q, scale, shift)
        if isinstance(attention.pool_norm, nn.modules.batchnorm._BatchNorm):
            pool_scale, pool_shift = batchnorm_affine(attention.pool_norm)  # pool(x s + t) = pool(x) s + t
            scale, shift = scale * pool_scale, shift * pool_scale + pool_shift
            attention.pool_norm = nn.Identity()
        fold_preceding_affine(attention.k, scale, shift)
        fold_preceding_affine(attention.v, scale, shift)
        fold_preceding_affine(self.mlp.fc1, *batchnorm_affine(self.norm2))
        self.norm1, self.norm2 = nn.Identity(), nn.Identity()


class NextViTHead(nn.Module):
    """BN -> global average pool -> linear; the deploy form folds the BN into the linear."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm2d(in_features)
        self.classifier = nn.Linear(in_features, num_classes)
        init_trunc_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x).mean((2, 3)))  # (B, C, H, W) -> (B, C) -> (B, num_classes)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            fold_preceding_affine(self.classifier, *batchnorm_affine(self.norm))  # mean(x s + t) = mean(x) s + t
            self.norm = nn.Identity()


# ---- specs --------------------------------------------------------------------------------------
def _check_head_dim(spec: BlockSpec, label: str, width: int) -> None:
    head_dim = spec.head_dim  # type: ignore[attr-defined]
    if width <= 0 or width % head_dim:
        raise ValueError(
            f"{type(spec).__name__}.head_dim={head_dim} must divide the resolved {label} ({width}); "
            "change head_dim or the width multiplier"
        )


@dataclass(frozen=True, kw_only=True)
class NextConvBlockSpec(BlockSpec):
    """NCB: ``out_channels`` C, MLP hidden make_divisible(mlp_ratio C, 32); mid_channels = the MLP width."""

    kind: ClassVar[str] = "next_conv_block"

    out_channels: int
    stride: int = 1
    head_dim: int = 32
    mlp_ratio: float = 3.0

    def validate(self) -> None:
        super().validate()
        check_positive(self, "head_dim", "mlp_ratio")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=make_divisible(out * self.mlp_ratio, WIDTH_DIVISOR))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        _check_head_dim(self, "out_channels", widths.out_channels)

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)  # else the patch embedding (pool + 1x1 conv-BN) comes first

    def build(self, block: ResolvedBlock) -> nn.Module:
        return NextConvBlock(block.in_channels, block.out_channels, block.mid_channels, self.stride, self.head_dim)


@dataclass(frozen=True, kw_only=True)
class NextTransformerBlockSpec(BlockSpec):
    """NTB: C_s = make_divisible(int(mix_ratio C), 32) attention channels (mid_channels), C - C_s MHCA channels."""

    kind: ClassVar[str] = "next_transformer_block"

    out_channels: int
    stride: int = 1
    sr_ratio: int = 1  # keys/values from sr^2-token pools: 8, 4, 2, 1 in stages 1-4
    head_dim: int = 32
    mlp_ratio: float = 2.0
    mix_ratio: float = 0.75  # the release's ``mix_block_ratio``

    def validate(self) -> None:
        super().validate()
        check_positive(self, "sr_ratio", "head_dim", "mlp_ratio")
        check(self, "mix_ratio", 0.0 < self.mix_ratio < 1.0, "in (0, 1): the attention share of the output width")

    def attention_width(self, out_channels: int) -> int:
        return make_divisible(int(out_channels * self.mix_ratio), WIDTH_DIVISOR)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out = scale(self.out_channels)
        return BlockWidths(out_channels=out, mid_channels=self.attention_width(out))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        _check_head_dim(self, "attention width", widths.mid_channels)
        _check_head_dim(self, "convolution width (out_channels - attention width)", widths.out_channels - widths.mid_channels)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        size = super().output_size(input_size)
        if size[0] * size[1] < self.sr_ratio**2:
            raise ValueError(
                f"NextTransformerBlockSpec.sr_ratio={self.sr_ratio} pools {self.sr_ratio**2} tokens into one key, "
                f"but its {size[0]}x{size[1]} map has only {size[0] * size[1]} tokens; use a larger input"
            )
        return size

    def build(self, block: ResolvedBlock) -> nn.Module:
        hidden = make_divisible(block.out_channels * self.mlp_ratio, WIDTH_DIVISOR)
        return NextTransformerBlock(
            block.in_channels, block.out_channels, block.mid_channels, hidden, self.stride, self.sr_ratio, self.head_dim
        )


@dataclass(frozen=True, kw_only=True)
class NextViTHeadSpec(HeadSpec):
    """The release's head: BN -> global average pool -> linear classifier."""

    kind: ClassVar[str] = "nextvit_head"

    def build(self, block: ResolvedBlock) -> nn.Module:
        return NextViTHead(block.in_channels, self.num_classes)
