"""Channel shuffle (ShuffleNet V1 Sec. 3.1): lets information cross group-convolution groups."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelShuffle", "channel_shuffle"]


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.shape
    # (B, G*C', H, W) -> (B, G, C', H, W) -> (B, C', G, H, W) -> (B, C, H, W)
    x = x.view(batch, groups, channels // groups, height, width).transpose(1, 2)
    return x.reshape(batch, channels, height, width)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
