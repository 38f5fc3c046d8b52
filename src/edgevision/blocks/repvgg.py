"""RepVGG block (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021, Sec. 3.2-3.3),
and :class:`RepConv`, the re-parameterizable conv it generalizes to (MobileOne's block builds it too).

Train form: parallel linear branches whose outputs add, then the activation::

    act( sum_i BN_i(conv_kxk_i(x))      # num_conv_branches k x k conv-BN branches (RepVGG: 1)
         + BN(conv_1x1(x))               # "scale" branch, when k > 1
         + BN(x) )                       # identity branch, when C_in == C_out and stride == 1

Deploy form (Sec. 3.3): the branches are linear, so they sum to ONE k x k conv with bias:
``act(conv(x))``. An optional squeeze-excite (MobileOne-S4) sits between the sum and the
activation in both forms, as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, SqueezeExcite, conv_from_kernel, fold_batchnorm, get_activation, identity_kernel, pad_kernel
from ..spec import check_positive
from .base import BlockSpec, BlockWidths, ResolvedBlock, check_activation, check_groups_divide

__all__ = ["RepVGGBlockSpec", "RepConv"]


@dataclass(frozen=True, kw_only=True)
class RepVGGBlockSpec(BlockSpec):
    """3x3 conv-BN + 1x1 conv-BN + identity BN (when shapes allow) -> ReLU; one 3x3 conv when deployed."""

    kind: ClassVar[str] = "repvgg_block"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    stride: int = 1
    groups: int = 1  # RepVGG-B*g2/g4 use grouped 3x3 convs in some layers
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_positive(self, "groups")
        check_activation(self)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "channels", in_channels, widths.out_channels)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return RepConv(
            block.in_channels,
            block.out_channels,
            kernel_size=3,
            stride=self.stride,
            groups=self.groups,
            act=get_activation(self.activation),
        )


class RepConv(nn.Module):
    """Re-parameterizable k x k conv: ``num_conv_branches`` conv-BN branches + 1x1 scale + identity BN.

    ``reparameterize()`` replaces every branch by the single conv ``fused`` (with bias). The
    model walker folds the branches' BatchNorms first (children-first); ``fused_kernel()`` folds
    any that are still unfolded on the fly (without changing the block), so a lone block works too.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        num_conv_branches: int = 1,
        se_channels: int | None = None,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        if num_conv_branches < 1:
            raise ValueError(f"RepConv needs at least one conv branch, got num_conv_branches={num_conv_branches}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups

        def conv_bn(k: int) -> ConvNormAct:
            return ConvNormAct(in_channels, out_channels, k, stride, groups=groups, act=None)

        self.branches = nn.ModuleList(conv_bn(kernel_size) for _ in range(num_conv_branches))
        self.scale = conv_bn(1) if kernel_size > 1 else None
        self.identity = nn.BatchNorm2d(in_channels) if in_channels == out_channels and stride == 1 else None
        self.fused: nn.Conv2d | None = None  # the deploy-form conv, set by reparameterize()
        self.se = SqueezeExcite(out_channels, se_channels) if se_channels else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:  # deploy form: (B, C, H, W) -> (B, C', H/s, W/s)
            return self.act(self.se(self.fused(x)))
        out = sum(branch(x) for branch in self.branches)  # (B, C, H, W) -> (B, C', H/s, W/s)
        if self.scale is not None:
            out = out + self.scale(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(self.se(out))

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight (C', C/g, k, k) and bias (C',) of the single conv equal to the branches (eval mode)."""
        weight = bias = 0
        for branch in [*self.branches] + ([self.scale] if self.scale is not None else []):
            branch_weight, branch_bias = branch.fused_kernel()
            weight = weight + pad_kernel(branch_weight, self.kernel_size)
            bias = bias + branch_bias
        if self.identity is not None:
            kernel = identity_kernel(self.in_channels, self.groups, self.kernel_size, like=weight)
            identity_weight, identity_bias = fold_batchnorm(kernel, None, self.identity)
            weight, bias = weight + identity_weight, bias + identity_bias
        return weight, bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused is not None:
            return
        weight, bias = self.fused_kernel()
        main = self.branches[0].conv  # stride, padding and dilation as built (output_stride may have dilated it)
        self.fused = conv_from_kernel(weight, bias, main.stride, main.padding, self.groups, main.dilation)
        self.branches, self.scale, self.identity = None, None, None

    def extra_repr(self) -> str:
        form = "deploy" if self.fused is not None else f"train, {len(self.branches)} conv branch(es)"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, groups={self.groups}, {form}"
