"""Xception blocks (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions",
CVPR 2017, Fig. 5), as in the authors' code (Keras ``applications/xception.py``).

A separable conv here is Xception's: k x k depthwise -> 1x1 pointwise with *no* BatchNorm or
non-linearity between them (Sec. 4.7 found that an intermediate activation hurts), then BN.

    residual block (entry / middle flow):
        [ReLU] -> sep -> BN -> ReLU -> sep -> BN (-> ReLU -> sep -> BN) [-> 3x3 max pool, stride 2]
        + shortcut (identity, or 1x1 conv stride 2 -> BN when the block downsamples or widens)
    plain block (exit flow, ``residual=False``): sep -> BN -> ReLU, for each width

The first residual block starts without the ReLU (``first_activation=False``): the stem already
ended in one. BatchNorm eps is Keras's 1e-3. Deploy form: every BN folds into its pointwise conv
(or the shortcut conv).
"""

from __future__ import annotations

import functools
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ConvNormAct
from ..spec import OMIT_DEFAULT, check
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, keeps_shape
from .conv import pooled_size

__all__ = ["SeparableConvNorm", "XceptionBlock", "XceptionBlockSpec"]

KERAS_BATCHNORM_EPS = 1e-3


@dataclass(frozen=True, kw_only=True)
class XceptionBlockSpec(BlockSpec):
    """One row group of Fig. 5: ``channels`` lists the separable convs' output widths in order."""

    kind: ClassVar[str] = "xception_block"
    supports_dilation: ClassVar[bool] = True

    channels: tuple[int, ...]
    stride: int = 1  # 2: end with a 3x3 / 2 max pool and project the shortcut
    residual: bool = True
    first_activation: bool = True  # ReLU before the first separable conv (residual blocks)
    #: BatchNorm eps: Keras's 1e-3 (the release); timm's legacy_xception port uses PyTorch's 1e-5
    norm_eps: float = field(default=KERAS_BATCHNORM_EPS, metadata={OMIT_DEFAULT: True})

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def validate(self) -> None:
        check(self, "channels", len(self.channels) > 0, "a non-empty tuple of widths")
        super().validate()
        check(self, "channels", all(c > 0 for c in self.channels), "positive widths")
        if not self.residual:
            check(self, "stride", self.stride == 1, "1 for a plain (non-residual) block")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        if scale.multiplier != 1.0:
            raise ValueError(
                f"XceptionBlockSpec holds Fig. 5's widths at width 1.0 and does not scale them; "
                f"got width_multiplier={scale.multiplier}: write a spec with the widths you want instead"
            )
        return BlockWidths(out_channels=self.channels[-1])

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return pooled_size(input_size, 3, self.stride, "same") if self.stride > 1 else input_size

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return self.residual and keeps_shape(block)

    def inner_widths(self) -> dict[str, int]:
        """Width-surgery protocol (``edgevision.prune``): every separable conv's width but the last (the block's out)."""
        return {f"channels.{k}": width for k, width in enumerate(self.channels[:-1])}

    def with_inner_widths(self, widths: dict[str, int]) -> "XceptionBlockSpec":
        channels = list(self.channels)
        for name, width in widths.items():
            channels[int(name.split(".")[1])] = width
        return dataclasses.replace(self, channels=tuple(channels))

    def build(self, block: ResolvedBlock) -> nn.Module:
        # the last width is the resolved out (a pruned block fixes it to fewer channels than the spec's)
        return XceptionBlock(
            block.in_channels, self.channels[:-1] + (block.out_channels,), self.stride, self.residual, self.first_activation, block.identity_shortcut,
            norm_eps=self.norm_eps,
        )


class SeparableConvNorm(nn.Module):
    """3x3 depthwise -> 1x1 pointwise (no norm or activation between) -> BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, norm_eps: float = KERAS_BATCHNORM_EPS) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels, bias=False)
        norm = functools.partial(nn.BatchNorm2d, eps=norm_eps)
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, norm=norm, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))  # (B, C, H, W) -> (B, C', H, W)


class XceptionBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, ...],
        stride: int = 1,
        residual: bool = True,
        first_activation: bool = True,
        identity_shortcut: bool | None = None,
        norm_eps: float = KERAS_BATCHNORM_EPS,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for index, out_channels in enumerate(channels):
            if residual and (index > 0 or first_activation):
                layers.append(nn.ReLU())  # pre-activation inside residual blocks (not in place: x feeds the shortcut)
            layers.append(SeparableConvNorm(width, out_channels, norm_eps=norm_eps))
            if not residual:
                layers.append(nn.ReLU())  # exit flow: post-activation
            width = out_channels
        if stride == 2:
            layers.append(nn.MaxPool2d(3, 2, padding=1))
        self.body = nn.Sequential(*layers)
        self.residual = residual
        if identity_shortcut is None:  # built by hand: the spec's rule
            identity_shortcut = residual and stride == 1 and in_channels == width
        self.shortcut: nn.Module | None = None  # plain (exit-flow) blocks have none
        if identity_shortcut:
            self.shortcut = nn.Identity()
        elif residual:
            norm = functools.partial(nn.BatchNorm2d, eps=norm_eps)
            self.shortcut = ConvNormAct(in_channels, width, 1, stride, norm=norm, act=None)  # 1x1 projection

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        if not self.residual:
            return ()
        # the last separable conv's BN ends the branch (a max pool after it keeps zeros zero)
        last = [layer for layer in self.body if isinstance(layer, SeparableConvNorm)][-1]
        return init_last_norm(last.pointwise.norm, zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)  # (B, C, H, W) -> (B, C', H/s, W/s)
        return out + self.shortcut(x) if self.shortcut is not None else out
