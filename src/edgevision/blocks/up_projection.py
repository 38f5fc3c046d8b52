"""FCRN's up-projection decoder block (Laina et al. 2016, "Deeper Depth Prediction with Fully
Convolutional Residual Networks", Sec. 3.1, Fig. 2 and Fig. 3).

An *up-convolution* doubles H and W: 2x2 "unpooling" (each value to the top-left of a 2x2 cell,
zeros elsewhere) followed by a 5x5 convolution. Most of that 5x5 kernel multiplies zeros, so the
paper's *fast* form computes the same map from the small input with four convolutions of kernels
3x3, 3x2, 2x3 and 2x2 (the taps of the 5x5 that land on non-zero values at each of the four output
parities) and interleaves their outputs: 25 weights per channel pair either way, ~4x fewer
multiply-adds. The *up-projection* block is residual: ``relu(bn(conv3x3(relu(bn(upconv_a(x))))) +
bn(upconv_b(x)))``.

Output-parity bookkeeping (5x5 kernel ``w``, unpooled value of x[i, j] at (2i, 2j), padding 2):
output row 2i sees input rows i-1, i, i+1 through kernel rows 0, 2, 4; row 2i+1 sees rows i, i+1
through kernel rows 1, 3. Columns likewise. Hence the four sub-kernels ``w[0::2, 0::2]`` (3x3),
``w[0::2, 1::2]`` (3x2), ``w[1::2, 0::2]`` (2x3), ``w[1::2, 1::2]`` (2x2), and an input padded by
one on every side (the 2-tap kernels start one row/column later).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import Spec, check_choice, check_positive

__all__ = ["UpProjectionSpec", "UpProjection", "FastUpConvolution", "NaiveUpConvolution", "unpool2x", "UP_CONVOLUTION_FORMS"]

#: "fast": four interleaved small convolutions (the paper's Fig. 3); "naive": unpool + 5x5 (Fig. 2)
UP_CONVOLUTION_FORMS = ("fast", "naive")


def unpool2x(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, 2H, 2W]: each value at the top-left of its 2x2 cell, zeros elsewhere (Laina Fig. 2)."""
    zeros = torch.zeros_like(x)
    # channel order (value, 0, 0, 0) per 2x2 cell -> pixel_shuffle puts the value at offset (0, 0)
    return F.pixel_shuffle(torch.stack([x, zeros, zeros, zeros], dim=2).flatten(1, 2), 2)


class NaiveUpConvolution(nn.Module):
    """Unpool then a 5x5 convolution (padding 2): the reference the fast form must equal."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(unpool2x(x))


class FastUpConvolution(nn.Module):
    """The same map as :class:`NaiveUpConvolution` from four convolutions on the small input, interleaved."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False) -> None:
        super().__init__()
        # names: output-row parity, output-column parity (e = even, o = odd)
        self.conv_ee = nn.Conv2d(in_channels, out_channels, (3, 3), bias=bias)
        self.conv_eo = nn.Conv2d(in_channels, out_channels, (3, 2), bias=bias)
        self.conv_oe = nn.Conv2d(in_channels, out_channels, (2, 3), bias=bias)
        self.conv_oo = nn.Conv2d(in_channels, out_channels, (2, 2), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1))  # [N, C, H+2, W+2]
        ee = self.conv_ee(padded)  # rows i-1..i+1, cols j-1..j+1      -> [N, C', H, W]
        eo = self.conv_eo(padded[:, :, :, 1:])  # cols j..j+1
        oe = self.conv_oe(padded[:, :, 1:, :])  # rows i..i+1
        oo = self.conv_oo(padded[:, :, 1:, 1:])
        # pixel_shuffle: channel (c, r, s) -> pixel (2i + r, 2j + s)
        return F.pixel_shuffle(torch.stack([ee, eo, oe, oo], dim=2).flatten(1, 2), 2)  # [N, C', 2H, 2W]

    @torch.no_grad()
    def load_5x5(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> "FastUpConvolution":
        """Take the kernel of an unpool + 5x5 convolution ([C', C, 5, 5]); the result computes the same map."""
        for conv, (rows, cols) in ((self.conv_ee, (0, 0)), (self.conv_eo, (0, 1)), (self.conv_oe, (1, 0)), (self.conv_oo, (1, 1))):
            conv.weight.copy_(weight[:, :, rows::2, cols::2])
            if bias is not None:
                conv.bias.copy_(bias)
        return self

    def to_5x5(self) -> torch.Tensor:
        """The equivalent 5x5 kernel [C', C, 5, 5] (inverse of :meth:`load_5x5`)."""
        weight = self.conv_ee.weight.new_zeros(*self.conv_ee.weight.shape[:2], 5, 5)
        for conv, (rows, cols) in ((self.conv_ee, (0, 0)), (self.conv_eo, (0, 1)), (self.conv_oe, (1, 0)), (self.conv_oo, (1, 1))):
            weight[:, :, rows::2, cols::2] = conv.weight.detach()
        return weight


def up_convolution(in_channels: int, out_channels: int, form: str) -> nn.Module:
    return (FastUpConvolution if form == "fast" else NaiveUpConvolution)(in_channels, out_channels)


@dataclass(frozen=True, kw_only=True)
class UpProjectionSpec(Spec):
    """One up-projection block: ``in_channels`` at H x W -> ``out_channels`` at 2H x 2W (Laina Fig. 2c/3)."""

    kind: ClassVar[str] = "up_projection"

    in_channels: int
    out_channels: int
    form: str = "fast"

    def validate(self) -> None:
        check_positive(self, "in_channels")
        check_positive(self, "out_channels")
        check_choice(self, "form", UP_CONVOLUTION_FORMS)

    def build(self) -> "UpProjection":
        return UpProjection(self)


class UpProjection(nn.Module):
    """relu(bn(conv3x3(relu(bn(upconv(x))))) + bn(upconv'(x))): [N, C, H, W] -> [N, C', 2H, 2W]."""

    def __init__(self, spec: UpProjectionSpec) -> None:
        super().__init__()
        self.spec = spec
        c_in, c_out = spec.in_channels, spec.out_channels
        self.up = up_convolution(c_in, c_out, spec.form)
        self.bn_up = nn.BatchNorm2d(c_out)
        self.conv = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn_conv = nn.BatchNorm2d(c_out)
        self.projection = up_convolution(c_in, c_out, spec.form)
        self.bn_projection = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn_conv(self.conv(F.relu(self.bn_up(self.up(x)))))
        return F.relu(branch + self.bn_projection(self.projection(x)))
