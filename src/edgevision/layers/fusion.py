"""Algebra of structural re-parameterization (RepVGG Sec. 3.3, MobileOne Sec. 3, RepGhost Sec. 3).

Every fused form is built from three facts:
1. conv followed by BatchNorm (eval) is one conv with bias: W' = W * g/s, b' = beta + (b - mu) * g/s,
   with s = sqrt(var + eps);
2. parallel linear branches with the same stride and padding centre add: their kernels and biases add,
   smaller kernels zero-padded to the largest;
3. an identity (or BatchNorm-only) branch is a conv whose kernel is a centred one-hot per channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv_from_kernel", "fold_batchnorm", "identity_kernel", "pad_kernel", "FusedKernel"]

FusedKernel = tuple[torch.Tensor, torch.Tensor]  # (weight (O, I/g, k, k), bias (O,))


@torch.no_grad()
def fold_batchnorm(weight: torch.Tensor, bias: torch.Tensor | None, norm: nn.BatchNorm2d | nn.BatchNorm1d) -> FusedKernel:
    """Kernel and bias of ``norm(conv(x))`` as a single conv (eval-mode statistics)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (O,)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    fused_weight = weight * scale.reshape(shape)
    conv_bias = bias if bias is not None else torch.zeros_like(norm.running_mean)
    fused_bias = norm.bias + (conv_bias - norm.running_mean) * scale
    return fused_weight, fused_bias


@torch.no_grad()
def identity_kernel(channels: int, groups: int, kernel_size: int, like: torch.Tensor) -> torch.Tensor:
    """A (C, C/groups, k, k) kernel that maps each channel to itself: the identity as a conv."""
    per_group = channels // groups
    kernel = torch.zeros(channels, per_group, kernel_size, kernel_size, dtype=like.dtype, device=like.device)
    centre = kernel_size // 2
    for channel in range(channels):
        kernel[channel, channel % per_group, centre, centre] = 1.0
    return kernel


def pad_kernel(kernel: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zero-pad a smaller odd kernel to ``kernel_size`` around its centre (1x1 -> 3x3 etc.)."""
    pad = (kernel_size - kernel.shape[-1]) // 2
    if pad < 0:
        raise ValueError(f"cannot pad a {kernel.shape[-1]}x{kernel.shape[-1]} kernel down to {kernel_size}x{kernel_size}")
    return F.pad(kernel, [pad, pad, pad, pad]) if pad else kernel


@torch.no_grad()
def conv_from_kernel(
    weight: torch.Tensor,
    bias: torch.Tensor,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    groups: int = 1,
    dilation: int | tuple[int, int] = 1,
) -> nn.Conv2d:
    """The deploy-form conv holding a fused (weight (O, I/g, kh, kw), bias (O,)): the last step of every fusion."""
    out_channels, in_per_group, *kernel_size = weight.shape
    conv = nn.Conv2d(
        in_per_group * groups, out_channels, tuple(kernel_size), stride, padding, dilation, groups, bias=True
    ).to(weight)
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)
    return conv
