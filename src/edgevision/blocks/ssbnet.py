"""Adaptive sampling layer and the SSB bottleneck of SSBNet (Kwan & Song, "SSBNet: Improving Visual
Recognition Efficiency by Adaptive Sampling", arXiv 2207.11511, 2022).

SSBNet inserts a learned, input-dependent *sampling layer* into the ResNet bottleneck: the costly
3x3 conv runs on a spatially downsampled copy of the low-dimensional features, and the result is
mapped back to the full resolution before the last 1x1 conv restores the channels (Sec. 1: the
bottleneck already reduces channels; SSB also reduces the spatial size where the 3x3 conv works,
and the residual shortcut keeps every pixel available to later layers)::

    1x1 reduce -> sample down (H, W) -> (h, w) -> 3x3 conv -> sample up (h, w) -> (H, W) -> 1x1   [+ shortcut]

The sampling layer here:

* predicts a saliency map with a 1x1 conv (mid -> 1 channel, no bias) and a softmax over all H*W
  positions, so the map is a probability distribution over pixels;
* samples each axis separately: the marginal of the map along y (and along x) is a 1-D density,
  and output row k of h sits where its cumulative distribution reaches the quantile (k + 1/2) / h
  (inverse-transform sampling: salient rows get more samples, i.e. are "zoomed in");
* reads the features at those continuous positions with bilinear (tent) weights, written as two
  sampling matrices A_y (h x H) and A_x (w x W): ``down = A_y @ x @ A_x^T``, two matmuls;
* maps back with the transposed matrices, each full-resolution pixel's weights normalised to sum
  to one: ``up = U_y @ y @ U_x^T`` with ``U = A^T / rowsum(A^T)``. Pixels no sample touched get 0
  (the residual shortcut still carries them).

With a uniform saliency map (e.g. a zero-initialised predictor) the positions are the pixel
centres of a uniform h-grid, so for an even size and factor 2 the layer reduces exactly to 2x2
average pooling down and nearest-neighbour upsampling back (tested).

CAVEAT (fidelity): the paper's method section could not be read in the session that wrote this
file (only its abstract and introduction were available), and no official code is published.
The structure above (sampling inside the bottleneck around the 3x3 conv, up-sampling back before
the 1x1 restore) follows the introduction; the saliency -> inverse-CDF -> separable bilinear
formulation and the normalised-transpose upsampling are this implementation's choices, not
verified against the paper's equations.

Deploy form: the sampling layer has no normalisation; the block's BNs fold into their convs
(``ConvNormAct``), so ``ev.reparameterize`` leaves no BatchNorm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, get_activation
from ..spec import check, check_positive
from .base import BlockSpec, ResolvedBlock
from .resnet import ResNetBottleneck, ResNetBottleneckSpec

__all__ = [
    "AdaptiveSamplingSpec",
    "AdaptiveSampler",
    "SampledSpatialConv",
    "SSBBottleneckSpec",
    "SSBBottleneck",
    "inverse_cdf_positions",
    "bilinear_sampling_matrix",
]

# probability floor: keeps the inverse CDF finite where the saliency of a row/column underflows
_EPS = 1e-6


def inverse_cdf_positions(marginal: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Sample positions along one axis by inverse-transform sampling of a 1-D density.

    ``marginal``: (B, N), each row sums to 1 (pixel i covers [i, i + 1)). Returns (B, num_samples)
    continuous pixel-centre coordinates in [0, N - 1]: sample k sits where the piecewise-linear
    cumulative distribution reaches (k + 1/2) / num_samples. Uniform density -> uniform grid.
    """
    lower_cdf = torch.cumsum(marginal, dim=-1) - marginal  # (B, N): mass before pixel i
    quantiles = (torch.arange(num_samples, dtype=marginal.dtype, device=marginal.device) + 0.5) / num_samples
    # each pixel contributes the fraction of its mass lying below the quantile: 1 below, 0 above,
    # the fractional part inside -> sum = edge coordinate x with CDF(x) = quantile (no search op)
    filled = (quantiles[None, :, None] - lower_cdf[:, None, :]) / marginal.clamp_min(_EPS)[:, None, :]
    edge_coordinate = filled.clamp(0.0, 1.0).sum(dim=-1)  # (B, num_samples) in [0, N]
    return (edge_coordinate - 0.5).clamp(0.0, marginal.shape[-1] - 1.0)  # pixel-centre coordinates


def bilinear_sampling_matrix(positions: torch.Tensor, size: int) -> torch.Tensor:
    """(B, n) continuous coordinates -> (B, n, size) linear-interpolation (tent) weights; rows sum to 1."""
    pixels = torch.arange(size, dtype=positions.dtype, device=positions.device)
    return torch.relu(1.0 - (positions[:, :, None] - pixels[None, None, :]).abs())


def _upsampling_matrix(sampling: torch.Tensor) -> torch.Tensor:
    """(B, n, N) sampling matrix -> (B, N, n): its transpose, each full-resolution row normalised to sum 1."""
    transposed = sampling.transpose(1, 2)
    return transposed / transposed.sum(dim=-1, keepdim=True).clamp_min(_EPS)


def sampled_size(size: int, factor: int) -> int:
    """Side of the sampled map: ceil(size / factor), as a 'same'-padded strided op would give."""
    return math.ceil(size / factor)


class AdaptiveSampler(nn.Module):
    """Saliency-driven separable sampling: ``downsample`` (B, C, H, W) -> (B, C, h, w) and ``upsample`` back."""

    def __init__(self, channels: int, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.saliency = nn.Conv2d(channels, 1, 1, bias=False)  # bias would cancel in the softmax

    def sampling_matrices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> A_y (B, h, H), A_x (B, w, W)."""
        batch, _, height, width = x.shape
        saliency = self.saliency(x).flatten(1).softmax(dim=-1).view(batch, height, width)  # sums to 1
        rows = inverse_cdf_positions(saliency.sum(dim=2), sampled_size(height, self.factor))  # (B, h)
        cols = inverse_cdf_positions(saliency.sum(dim=1), sampled_size(width, self.factor))  # (B, w)
        return bilinear_sampling_matrix(rows, height), bilinear_sampling_matrix(cols, width)

    @staticmethod
    def downsample(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        # (B, 1, h, H) @ (B, C, H, W) @ (B, 1, W, w) -> (B, C, h, w)
        return rows.unsqueeze(1) @ x @ cols.transpose(1, 2).unsqueeze(1)

    @staticmethod
    def upsample(y: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        up_rows, up_cols = _upsampling_matrix(rows), _upsampling_matrix(cols)  # (B, H, h), (B, W, w)
        # (B, 1, H, h) @ (B, C, h, w) @ (B, 1, w, W) -> (B, C, H, W)
        return up_rows.unsqueeze(1) @ y @ up_cols.transpose(1, 2).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.sampling_matrices(x)
        return self.downsample(x, rows, cols)  # (B, C, H, W) -> (B, C, ceil(H/r), ceil(W/r))


class SampledSpatialConv(nn.Module):
    """The SSB replacement of the bottleneck's 3x3 conv: sample down -> 3x3 conv (+BN, act) -> sample up."""

    def __init__(
        self, channels: int, factor: int = 2, groups: int = 1, act: Callable[[], nn.Module] | None = nn.ReLU
    ) -> None:
        super().__init__()
        self.sampler = AdaptiveSampler(channels, factor)
        self.conv = ConvNormAct(channels, channels, 3, groups=groups, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.sampler.sampling_matrices(x)  # A_y (B, h, H), A_x (B, w, W)
        y = self.conv(self.sampler.downsample(x, rows, cols))  # (B, Cm, H, W) -> (B, Cm, h, w)
        return self.sampler.upsample(y, rows, cols)  # -> (B, Cm, H, W)


@dataclass(frozen=True, kw_only=True)
class AdaptiveSamplingSpec(BlockSpec):
    """The sampling layer alone as a network block: adaptive downsampling by ``stride`` (keeps channels)."""

    kind: ClassVar[str] = "adaptive_sampling"
    preserves_channels: ClassVar[bool] = True
    allowed_strides: ClassVar[tuple[int, ...]] = (2, 3, 4)

    stride: int = 2  # sampling factor r: (H, W) -> (ceil(H/r), ceil(W/r))

    def build(self, block: ResolvedBlock) -> nn.Module:
        return AdaptiveSampler(block.in_channels, self.stride)


@dataclass(frozen=True, kw_only=True)
class SSBBottleneckSpec(ResNetBottleneckSpec):
    """ResNet bottleneck whose 3x3 conv runs on adaptively sampled features (SSBNet's SSB block).

    Stride-1 only: a downsampling block of the stage stays a plain ``ResNetBottleneckSpec``
    (``stride_on`` has no effect at stride 1).
    """

    kind: ClassVar[str] = "ssb_bottleneck"

    sampling_factor: int = 2  # r: the 3x3 conv sees (ceil(H/r), ceil(W/r))

    def validate(self) -> None:
        super().validate()
        check(self, "stride", self.stride == 1, "1 (use ResNetBottleneckSpec for the strided block of a stage)")
        check_positive(self, "sampling_factor")
        check(self, "sampling_factor", self.sampling_factor >= 2, ">= 2 (factor 1 is the plain ResNetBottleneckSpec)")

    def build(self, block: ResolvedBlock) -> nn.Module:
        return SSBBottleneck(
            block.in_channels,
            block.out_channels,
            block.mid_channels,
            sampling_factor=self.sampling_factor,
            groups=self.groups,
            act=get_activation(self.activation),
            se_channels=block.se_channels,
            identity_shortcut=block.identity_shortcut,
        )


class SSBBottleneck(ResNetBottleneck):
    """``ResNetBottleneck`` (stride 1) with ``SampledSpatialConv`` as its 3x3 conv; ``conv2.sampler`` is the sampler."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int,
        sampling_factor: int = 2,
        groups: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        se_channels: int | None = None,
        identity_shortcut: bool | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            mid_channels,
            stride=1,
            groups=groups,
            act=act,
            spatial_conv=SampledSpatialConv(mid_channels, sampling_factor, groups=groups, act=act),
            se_channels=se_channels,
            identity_shortcut=identity_shortcut,
        )
