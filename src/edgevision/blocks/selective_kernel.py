"""Selective Kernel unit (Li et al., "Selective Kernel Networks", CVPR 2019, Sec. 3.1 and Table 1).

SK convolution, on a C-channel input:

    split:   M branches, k x k grouped conv (G groups, stride s) -> BN -> ReLU each
             (a 5x5 branch is a 3x3 conv with dilation 2, Sec. 3.1)
    fuse:    U = sum of branches -> global average pool -> fc to d = max(C / r, L) -> BN -> ReLU
    select:  fc to M x C -> softmax across the M branches -> V = sum_m a_m * branch_m

SK unit (the SKNet-50 bottleneck, Table 1): 1x1 reduce -> SK conv -> 1x1 expand [+ shortcut] -> ReLU,
i.e. a ResNeXt bottleneck whose grouped 3x3 conv is an SK conv, so it is built as a
``ResNetBottleneck`` with ``spatial_conv=SelectiveKernelConv(...)``: projection shortcut (1x1 conv
+ BN) where the shape changes, stride on the SK conv, as in the authors' Caffe release
(``sknet50.prototxt``) and timm's ``skresnext50_32x4d``.

Both fcs are 1x1 convs without bias (as in the release); the first is a ``ConvNormAct``, so the
re-parameterize walker folds its BN like every other one. There is no multi-branch fusion: the
attention depends on the input, so the deploy form keeps the M branches, BN-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide, keeps_shape
from .resnet import ResNetBottleneck

__all__ = ["SelectiveKernelSpec", "SelectiveKernelConv", "SelectiveKernelAttention"]


@dataclass(frozen=True, kw_only=True)
class SelectiveKernelSpec(BlockSpec):
    """SK unit; the defaults are SKNet-50's (M = 2 with 3x3 and 5x5, G = 32, r = 16, L = 32)."""

    kind: ClassVar[str] = "selective_kernel"
    supports_dilation: ClassVar[bool] = True

    out_channels: int  # block output width (256, 512, 1024, 2048 in SKNet-50)
    mid_channels: int  # width of the 1x1 reduce and of every SK branch (128 ... 1024 in SKNet-50)
    stride: int = 1
    groups: int = 32  # G: groups of every branch conv
    kernel_sizes: tuple[int, ...] = (3, 5)  # one branch per kernel size (M = len)
    dilated_kernels: bool = True  # a k x k branch is a 3x3 conv with dilation (k - 1) / 2
    attention_reduction: int = 16  # r
    attention_min_channels: int = 32  # L
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "mid_channels", "groups", "attention_reduction", "attention_min_channels")
        check(self, "mid_channels", self.mid_channels % self.groups == 0, f"divisible by groups={self.groups}")
        check(
            self,
            "kernel_sizes",
            len(self.kernel_sizes) >= 2 and all(k >= 3 and k % 2 == 1 for k in self.kernel_sizes),
            "at least two odd kernel sizes >= 3 (one per branch)",
        )
        check_activation(self)

    def attention_channels(self, mid_channels: int) -> int:
        """d = max(C / r, L) (Sec. 3.1)."""
        return max(mid_channels // self.attention_reduction, self.attention_min_channels)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        mid = scale(self.mid_channels)
        return BlockWidths(out_channels=scale(self.out_channels), mid_channels=mid, se_channels=self.attention_channels(mid))

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "mid_channels", widths.mid_channels)

    def build(self, block: ResolvedBlock) -> nn.Module:
        act = get_activation(self.activation)
        sk_conv = SelectiveKernelConv(
            block.mid_channels, block.se_channels, self.stride, self.groups, self.kernel_sizes, self.dilated_kernels, act
        )
        return ResNetBottleneck(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            self.stride,
            act=act,
            spatial_conv=sk_conv,
            identity_shortcut=block.identity_shortcut,
        )

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)


class SelectiveKernelAttention(nn.Module):
    """Fuse + select: (B, M, C, H, W) branch outputs -> (B, M, C, 1, 1) softmax weights."""

    def __init__(
        self, channels: int, num_branches: int, attention_channels: int, act: Callable[[], nn.Module] | None = nn.ReLU
    ) -> None:
        super().__init__()
        self.num_branches = num_branches
        self.reduce = ConvNormAct(channels, attention_channels, 1, act=act)  # fc -> BN -> ReLU: the compact feature z
        self.select = nn.Conv2d(attention_channels, num_branches * channels, 1, bias=False)  # C logits per branch

    def forward(self, branches: torch.Tensor) -> torch.Tensor:
        batch, _, channels, _, _ = branches.shape
        pooled = branches.sum(1).mean((2, 3), keepdim=True)  # (B, M, C, H, W) -> U -> (B, C, 1, 1)
        logits = self.select(self.reduce(pooled))  # -> (B, d, 1, 1) -> (B, M*C, 1, 1)
        return logits.view(batch, self.num_branches, channels, 1, 1).softmax(dim=1)  # -> (B, M, C, 1, 1)


class SelectiveKernelConv(nn.Module):
    """M grouped-conv branches mixed by per-channel softmax attention; C -> C channels."""

    def __init__(
        self,
        channels: int,
        attention_channels: int,
        stride: int = 1,
        groups: int = 32,
        kernel_sizes: tuple[int, ...] = (3, 5),
        dilated_kernels: bool = True,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        branches = []
        for k in kernel_sizes:
            kernel, dilation = (3, (k - 1) // 2) if dilated_kernels else (k, 1)  # padding = dilation * (kernel - 1) / 2
            branches.append(ConvNormAct(channels, channels, kernel, stride, groups=groups, dilation=dilation, act=act))
        self.branches = nn.ModuleList(branches)
        self.attention = SelectiveKernelAttention(channels, len(branches), attention_channels, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, C, H, W) -> (B, M, C, H/s, W/s)
        weights = self.attention(branches)  # -> (B, M, C, 1, 1), sums to 1 over M
        return (branches * weights).sum(1)  # -> (B, C, H/s, W/s)
