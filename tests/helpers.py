"""Shared test utilities: non-trivial BatchNorm state and the deploy-equivalence check."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics.

    With identity BatchNorm (the state after construction) a broken fusion can still pass an
    equivalence test; these values make every term of the fold matter.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.weight.copy_(torch.rand(n, generator=generator) + 0.5)  # gamma in [0.5, 1.5)
            module.bias.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)  # var in [0.5, 1.5)
    return model


def max_relative_error(reference: torch.Tensor, other: torch.Tensor) -> float:
    """max |a - b| / max |a|: the issue's acceptance metric for deploy equivalence."""
    return ((reference - other).abs().max() / reference.abs().max().clamp_min(1e-12)).item()
