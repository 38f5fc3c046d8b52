"""The module builder: resolved network -> ``nn.Module`` (train form)."""

from __future__ import annotations

import torch
from torch import nn

from .network import NetworkSpec
from .resolve import ResolvedNetwork, resolve

__all__ = ["Network", "build"]


class Network(nn.Module):
    """stem -> stages -> head, with module paths matching ``ResolvedBlock.path``."""

    def __init__(self, resolved: ResolvedNetwork) -> None:
        super().__init__()
        self.spec = resolved.spec
        self.resolved = resolved
        self.stem = nn.Sequential(*(b.spec.build(b) for b in resolved.section("stem")))
        self.stages = nn.Sequential(
            *(nn.Sequential(*(b.spec.build(b) for b in resolved.stage(i))) for i in range(resolved.num_stages))
        )
        self.head = resolved.head.spec.build(resolved.head)

    @property
    def num_features(self) -> int:
        return self.resolved.head.in_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))  # (B, 3, H, W) -> (B, C, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))  # -> (B, num_classes)


def build(spec: NetworkSpec | ResolvedNetwork) -> Network:
    """Build the train-form module of a network spec (or an already resolved one)."""
    resolved = spec if isinstance(spec, ResolvedNetwork) else resolve(spec)
    return Network(resolved)
