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


_TEST_SIZES = (64, 96, 128, 160, 192, 224, 299)


def test_input_size(name: str, at_least: int = 64) -> int:
    """Smallest test resolution >= ``at_least`` at which the registered network resolves.

    Most zoo networks downsample 32x and run at 64; networks with valid-padding stems
    (Inception v3/v4, Xception) need more. Keeps registry-wide tests cheap for every model.
    """
    import edgevision as ev

    spec = ev.get_spec(name)
    for size in (s for s in _TEST_SIZES if s >= at_least):
        try:
            ev.resolve(spec, input_size=size)
        except ValueError:
            continue
        return size
    raise AssertionError(f"{name} does not resolve at any test size {_TEST_SIZES}")


test_input_size.__test__ = False  # a helper, not a test (its name starts with "test_")


def meta_model(name: str) -> nn.Module:
    """A registered model on the meta device: exact shapes, no memory, no arithmetic.

    Parameter and MAC counts need shapes only, so the fidelity tests of big classics (VGG-16:
    138M parameters) cost milliseconds instead of seconds.
    """
    import edgevision as ev

    with torch.device("meta"):
        return ev.create_model(name)


def build_block(spec, in_channels: int, size: int = 12, scale=None) -> nn.Module:
    """Train form of one block on a ``size`` x ``size`` input, resolved by ``edgevision.resolve_block``.

    The default scale keeps the spec's widths exactly (multiplier 1, divisor 1).
    """
    import edgevision as ev

    resolved = ev.resolve_block(spec, in_channels, (size, size)) if scale is None else ev.resolve_block(spec, in_channels, (size, size), scale)
    return spec.build(resolved)


def fake_block_latency(block, setting):
    """A deterministic stand-in for timing one block (tests never time anything): ms proportional to the
    multiply-adds of a 1x1 -> 3x3 depthwise -> 1x1 block of its widths at its input size, plus 10 us a block."""
    from edgevision.lut import BlockLatency

    height, width = block.input_size
    mid = block.mid_channels or block.out_channels
    macs = height * width * (block.in_channels * mid + 9 * mid + mid * block.out_channels)
    return BlockLatency(median_ms=0.01 + macs * 1e-6, runs=1)


def assert_same_weights(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    """A resumed run's state dict equals the uninterrupted run's, tensor by tensor (same float arithmetic)."""
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=1e-5, atol=1e-6, msg=name)
