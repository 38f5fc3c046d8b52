"""Conv -> BatchNorm -> activation, the primitive almost every efficient block is made of."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .fusion import conv_from_kernel, fold_batchnorm

__all__ = ["ConvNormAct", "same_padding"]


def same_padding(kernel_size: int | tuple[int, int], dilation: int = 1) -> int | tuple[int, int]:
    """Padding that keeps H x W at stride 1 for odd kernels (output = ceil(H / stride)).

    A (kh, kw) kernel (Inception v3's 1x7 / 7x1 factorized convs) gets (ph, pw).
    """
    if isinstance(kernel_size, tuple):
        return tuple(dilation * (k - 1) // 2 for k in kernel_size)  # type: ignore[return-value]
    return dilation * (kernel_size - 1) // 2


class ConvNormAct(nn.Module):
    """``act(norm(conv(x)))``. Pass ``norm=None`` or ``act=None`` to drop a part.

    The conv has a bias only when there is no norm (a bias before BatchNorm is wasted). Padding
    defaults to "same" (``same_padding``); pass ``padding=0`` for the valid convs of Inception/Xception stems.
    ``reparameterize()`` folds the norm into the conv: the deploy form is conv(+bias) -> act.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 1,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        norm: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        bias: bool | None = None,
        padding: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvNormAct channels ({in_channels} -> {out_channels}) must be divisible by groups={groups}")
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=same_padding(kernel_size, dilation) if padding is None else padding,  # None: "same"
            dilation=dilation,
            groups=groups,
            bias=(norm is None) if bias is None else bias,
        )
        self.norm = norm(out_channels) if norm is not None else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))

    @torch.no_grad()
    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias of conv -> norm as one conv (eval statistics), whether or not the norm is folded yet.

        Multi-branch blocks (RepVGG, DBB, RMNet) sum their branches' kernels; the walker goes
        children-first, so a branch may already be folded when its block asks.
        """
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            return fold_batchnorm(self.conv.weight, self.conv.bias, self.norm)
        return self.conv.weight, self.conv.bias

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold BatchNorm into the conv (eval statistics)."""
        if not isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            return
        weight, bias = self.fused_kernel()
        old = self.conv
        self.conv = conv_from_kernel(weight, bias, old.stride, old.padding, old.groups, old.dilation)
        self.norm = nn.Identity()
