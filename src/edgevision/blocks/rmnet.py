"""RM (reserve-and-merge) ResNet basic block (Meng et al., "RMNet: Equivalently Removing Residual
Connection from Deep Neural Networks", 2021, Sec. 3: the RM operation).

Train form: exactly a ResNet basic block (two 3x3 conv-BN, ReLU between, shortcut added before
the last ReLU). Deploy form: a plain conv-ReLU-conv-ReLU with no residual::

    reserve:  conv1' (C -> C + C', 3x3, stride s): the first C filters are a Dirac identity
              (centre tap 1, bias 0), the other C' are conv1 with its BN folded; then ReLU
    merge:    conv2' (C + C' -> C', 3x3): the first C input channels carry the shortcut
              (Dirac identity, or the projection's 1x1 kernel padded to 3x3 with its BN folded),
              the other C' are conv2 with its BN folded; biases add; then ReLU

The reserved channels pass ReLU unchanged because the block's input is itself a ReLU output
(a stem's ReLU/max-pool, or the previous block), so it is non-negative: ``ReLU(x) = x``. A
strided block subsamples the reserved copy with the centre tap, which is what the projection's
stride-2 1x1 conv reads. This is the authors' ``ResBlock.deploy(merge_bn=True)``
(fxmeng/RMNet ``models/resnet2vgg.py``); their ``running1``/``running2`` BatchNorms without affine
parameters only keep statistics for the unmerged (pruning) form and hold no parameters, so they
are left out here.

The deploy form is *wider* than the train form (conv1' has C + C' filters): RMNet trades
parameters and MACs for a branch-free network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..layers import identity_kernel, pad_kernel
from ..spec import check
from .base import ResolvedBlock
from .resnet import ResNetBasicBlock, ResNetBasicSpec

__all__ = ["RMResNetBasicSpec", "RMResNetBasicBlock"]


@dataclass(frozen=True, kw_only=True)
class RMResNetBasicSpec(ResNetBasicSpec):
    """A ResNet basic block that deploys without its residual; its input must be non-negative (after a ReLU)."""

    kind: ClassVar[str] = "rm_resnet_basic"

    def validate(self) -> None:
        super().validate()
        reason = "'relu' (the reserved channels pass ReLU only because ReLU(x) = x for x >= 0)"
        check(self, "activation", self.activation == "relu", reason)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return RMResNetBasicBlock(block.in_channels, block.out_channels, self.stride, identity_shortcut=block.identity_shortcut)


class RMResNetBasicBlock(ResNetBasicBlock):
    """Train form: ResNet basic block. ``reparameterize()``: conv1' -> ReLU -> conv2' -> ReLU (``self.plain``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, identity_shortcut: bool | None = None) -> None:
        super().__init__(in_channels, out_channels, stride, act=nn.ReLU, identity_shortcut=identity_shortcut)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.plain: nn.Sequential | None = None  # the deploy form, set by reparameterize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.plain is not None:  # (B, C, H, W) -> (B, C + C', H/s, W/s) -> (B, C', H/s, W/s)
            return self.plain(x)
        return super().forward(x)

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.plain is not None:
            return
        c_in, c_out = self.in_channels, self.out_channels
        w1, b1 = self.conv1.fused_kernel()  # (C', C, 3, 3)
        w2, b2 = self.conv2.fused_kernel()  # (C', C', 3, 3)
        # reserve: identity filters for the input, then conv1's filters
        reserve = torch.cat([identity_kernel(c_in, 1, 3, like=w1), w1], dim=0)  # (C + C', C, 3, 3)
        reserve_bias = torch.cat([torch.zeros_like(b1[:1]).expand(c_in), b1])
        # merge: the shortcut reads the reserved channels, conv2 reads the rest
        if isinstance(self.shortcut, nn.Identity):
            shortcut_weight, shortcut_bias = identity_kernel(c_in, 1, 3, like=w2), torch.zeros_like(b2)
        else:
            shortcut_weight, shortcut_bias = self.shortcut.fused_kernel()
            shortcut_weight = pad_kernel(shortcut_weight, 3)  # 1x1 -> centre of 3x3
        merge = torch.cat([shortcut_weight, w2], dim=1)  # (C', C + C', 3, 3)
        merge_bias = b2 + shortcut_bias
        first, second = self.conv1.conv, self.conv2.conv  # stride, padding, dilation as built (output_stride)
        conv1 = nn.Conv2d(c_in, c_in + c_out, 3, first.stride, first.padding, first.dilation).to(w1)
        conv2 = nn.Conv2d(c_in + c_out, c_out, 3, second.stride, second.padding, second.dilation).to(w2)
        for conv, weight, bias in ((conv1, reserve, reserve_bias), (conv2, merge, merge_bias)):
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        self.plain = nn.Sequential(conv1, nn.ReLU(), conv2, nn.ReLU())
        self.conv1 = self.conv2 = self.shortcut = self.act = None

    def extra_repr(self) -> str:
        form = "deploy (plain)" if self.plain is not None else "train (residual)"
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}, {form}"
