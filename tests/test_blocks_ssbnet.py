"""Block-level tests: SSBNet's adaptive sampling layer and the SSB bottleneck (blocks/ssbnet.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgevision as ev
from edgevision import reparameterize
from edgevision.blocks import (
    AdaptiveSampler,
    AdaptiveSamplingSpec,
    ResNetBottleneck,
    ResNetBottleneckSpec,
    SampledSpatialConv,
    SSBBottleneck,
    SSBBottleneckSpec,
    inverse_cdf_positions,
)
from edgevision.spec import Spec
from helpers import build_block, max_relative_error, randomize_batchnorm


def build(spec, in_channels: int, size: int = 16) -> nn.Module:
    return build_block(spec, in_channels, size)


def uniform_sampler(channels: int, factor: int = 2) -> AdaptiveSampler:
    sampler = AdaptiveSampler(channels, factor)
    nn.init.zeros_(sampler.saliency.weight)  # constant logits -> uniform saliency
    return sampler


def test_sampling_layer_shapes_follow_ceil_of_factor():
    x = torch.randn(2, 8, 15, 12)
    assert AdaptiveSampler(8, 2)(x).shape == (2, 8, 8, 6)
    assert AdaptiveSampler(8, 3)(x).shape == (2, 8, 5, 4)
    rows, cols = AdaptiveSampler(8, 2).sampling_matrices(x)
    assert rows.shape == (2, 8, 15) and cols.shape == (2, 6, 12)
    torch.testing.assert_close(rows.sum(-1), torch.ones(2, 8))  # interpolation weights sum to 1


def test_uniform_saliency_is_average_pooling_down_and_nearest_up():
    sampler = uniform_sampler(4)
    x = torch.randn(2, 4, 8, 6)
    rows, cols = sampler.sampling_matrices(x)
    down = sampler.downsample(x, rows, cols)
    torch.testing.assert_close(down, F.avg_pool2d(x, 2))
    y = torch.randn(2, 4, 4, 3)
    torch.testing.assert_close(sampler.upsample(y, rows, cols), F.interpolate(y, scale_factor=2, mode="nearest"))


def test_inverse_cdf_puts_more_samples_where_the_density_is_high():
    uniform = torch.full((1, 8), 1 / 8)
    torch.testing.assert_close(inverse_cdf_positions(uniform, 4), torch.tensor([[0.5, 2.5, 4.5, 6.5]]))
    peaked = torch.tensor([[0.02, 0.02, 0.02, 0.86, 0.02, 0.02, 0.02, 0.02]])
    positions = inverse_cdf_positions(peaked, 4)[0]
    assert torch.all(positions[1:] >= positions[:-1])  # monotone
    assert torch.all((positions > 3.0 - 0.5) & (positions < 4.0 - 0.5 + 1e-6))  # all inside pixel 3 ("zoom in")


def test_sampled_positions_depend_on_the_input():
    torch.manual_seed(0)
    sampler = AdaptiveSampler(4, 2)
    nn.init.normal_(sampler.saliency.weight, std=3.0)
    x = torch.randn(2, 4, 8, 8)
    rows, cols = sampler.sampling_matrices(x)
    assert not torch.allclose(rows[0], rows[1], atol=1e-3)  # two images, two different grids
    uniform_rows, _ = uniform_sampler(4).sampling_matrices(x)
    assert not torch.allclose(rows[0], uniform_rows[0], atol=1e-3)


def test_saliency_predictor_receives_a_gradient():
    conv = SampledSpatialConv(4, 2)
    conv(torch.randn(2, 4, 8, 8)).square().sum().backward()
    sampler = conv.sampler
    assert sampler.saliency.weight.grad is not None and sampler.saliency.weight.grad.abs().sum() > 0


def test_ssb_bottleneck_shapes_params_and_deploy_equivalence():
    spec = SSBBottleneckSpec(out_channels=32, mid_channels=8)
    block = build(spec, 32, size=10)
    assert isinstance(block, SSBBottleneck) and isinstance(block.conv2, SampledSpatialConv)
    plain = build(ResNetBottleneckSpec(out_channels=32, mid_channels=8), 32, size=10)
    assert isinstance(plain, ResNetBottleneck)
    extra = sum(p.numel() for p in block.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 8  # one 1x1 saliency conv, mid -> 1, no bias
    x = torch.randn(2, 32, 10, 10)
    randomize_batchnorm(block)
    block.eval()
    with torch.no_grad():
        reference = block(x)
        assert reference.shape == (2, 32, 10, 10)
        deployed = reparameterize(block)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
        assert max_relative_error(reference, deployed(x)) <= 1e-4


def test_sampling_cuts_the_3x3_conv_macs_by_the_factor_squared():
    plain = build(ResNetBottleneckSpec(out_channels=64, mid_channels=16), 64, size=16).eval()
    sampled = build(SSBBottleneckSpec(out_channels=64, mid_channels=16), 64, size=16).eval()
    mid, full, half = 16, 16, 8
    saved_conv = mid * mid * 9 * (full * full - half * half)  # the 3x3 conv runs at 8x8 instead of 16x16
    sampling = 2 * (mid * full * full * half + mid * full * half * half)  # two matmuls down, two up
    saliency = mid * full * full  # 1x1 conv, mid -> 1
    difference = ev.count_macs(plain, 16, in_channels=64) - ev.count_macs(sampled, 16, in_channels=64)
    assert difference == saved_conv - sampling - saliency


def test_specs_round_trip_and_reject_bad_fields():
    spec = SSBBottleneckSpec(out_channels=64, mid_channels=16, sampling_factor=3)
    assert Spec.from_json(spec.to_json()) == spec
    assert Spec.from_json(AdaptiveSamplingSpec(stride=2).to_json()) == AdaptiveSamplingSpec(stride=2)
    with pytest.raises(ValueError, match="stride"):
        SSBBottleneckSpec(out_channels=64, mid_channels=16, stride=2)
    with pytest.raises(ValueError, match="sampling_factor"):
        SSBBottleneckSpec(out_channels=64, mid_channels=16, sampling_factor=1)
    with pytest.raises(ValueError, match="stride"):
        AdaptiveSamplingSpec(stride=1)


def test_sampling_spec_keeps_channels_and_downsamples():
    layer = build(AdaptiveSamplingSpec(stride=2), 6, size=9)
    assert layer(torch.randn(1, 6, 9, 9)).shape == (1, 6, 5, 5)
    assert AdaptiveSamplingSpec(stride=2).output_size((9, 9)) == (5, 5)
