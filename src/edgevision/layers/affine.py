"""Per-channel affine ``x * scale + shift``: the deploy form of a BatchNorm that cannot be folded.

A BatchNorm right after a conv or linear folds into it (``fold_batchnorm``). A *pre-activation*
BatchNorm (DenseNet, Wide ResNet, ResNet v2: BN -> ReLU -> conv) has a non-linearity between it
and the next conv, and in DenseNet its input is a concatenation of several earlier layers, so
there is no single conv to fold into. In eval mode it is still just a per-channel affine map;
``ChannelAffine.from_batchnorm`` gives that map with the same parameter count (scale and shift
stand where gamma and beta stood) and without the running statistics.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelAffine"]


class ChannelAffine(nn.Module):
    """``x * scale + shift`` with one (scale, shift) per channel of dim 1: (B, C, ...) -> (B, C, ...)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(num_channels))
        self.shift = nn.Parameter(torch.zeros(num_channels))

    @classmethod
    @torch.no_grad()
    def from_batchnorm(cls, norm: nn.modules.batchnorm._BatchNorm) -> "ChannelAffine":
        """The eval-mode map of ``norm``: scale = gamma / sqrt(var + eps), shift = beta - mean * scale."""
        affine = cls(norm.num_features).to(norm.running_mean)
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        affine.scale.copy_(scale)
        affine.shift.copy_(norm.bias - norm.running_mean * scale)
        return affine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)  # broadcast over (B, C, H, W) or (B, C)
        return x * self.scale.reshape(shape) + self.shift.reshape(shape)
