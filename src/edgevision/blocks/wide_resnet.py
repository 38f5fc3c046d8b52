"""Pre-activation blocks of Wide ResNet (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016,
Sec. 2 and Table 1), and the pre-activation pieces DenseNet shares.

Wide ResNet's basic block is He et al.'s pre-activation block ("Identity Mappings in Deep Residual
Networks", ECCV 2016) with k times more channels, B(3,3):

    BN -> ReLU -> 3x3 conv (stride s) -> BN -> ReLU -> [dropout] -> 3x3 conv   [+ shortcut]

No ReLU after the addition. The shortcut is the identity when the shape is kept; otherwise a 1x1
conv (stride s, no BN) applied to the *pre-activated* input, as in the authors' release
(``models/wide-resnet.lua``: the first BN-ReLU is shared by both paths when the width changes;
``pytorch/resnet.py``: ``convdim`` reads ``o1``). Every conv is bias-free (``utils.DisableBias``).

Deploy form: the BN after the first conv folds into it; the pre-activation BN reads a residual sum
(no conv directly before it, a ReLU directly after it), so it becomes a :class:`ChannelAffine`
(``PreActivation.reparameterize``). Same for DenseNet's BN-ReLU-conv layers and for the final
BN-ReLU before the classifier of both networks (:class:`NormActSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_last_norm
from ..layers import ChannelAffine, ConvNormAct, get_activation
from ..spec import check
from .base import BlockSpec, ResolvedBlock, check_activation, keeps_shape
from .conv import ConvNormActSpec

__all__ = [
    "BareConvSpec",
    "NormActSpec",
    "WideBasicSpec",
    "PreActivation",
    "WideBasicBlock",
]


class PreActivation(nn.Module):
    """BN -> activation on a tensor no conv can absorb: (B, C, H, W) -> (B, C, H, W).

    ``reparameterize()`` turns the BN into its eval-mode per-channel affine map (``ChannelAffine``).
    """

    def __init__(self, channels: int, act: Callable[[], nn.Module] | None = nn.ReLU) -> None:
        super().__init__()
        self.norm: nn.Module = nn.BatchNorm2d(channels)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x))

    @torch.no_grad()
    def reparameterize(self) -> None:
        if isinstance(self.norm, nn.modules.batchnorm._BatchNorm):
            self.norm = ChannelAffine.from_batchnorm(self.norm)


@dataclass(frozen=True, kw_only=True)
class NormActSpec(BlockSpec):
    """BN -> activation, keeping the width: the last pre-activation before the classifier
    (Wide ResNet's final BN-ReLU, DenseNet's ``norm5`` + ReLU)."""

    kind: ClassVar[str] = "norm_act"
    supports_dilation: ClassVar[bool] = True
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    stride: int = 1
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check_activation(self)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return PreActivation(block.in_channels, get_activation(self.activation))


@dataclass(frozen=True, kw_only=True)
class BareConvSpec(ConvNormActSpec):
    """k x k conv with neither norm, bias nor activation: the stem of a pre-activation network,
    whose first block normalizes what it produces (Wide ResNet's 3x3, 3 -> 16 conv)."""

    kind: ClassVar[str] = "bare_conv"
    supports_dilation: ClassVar[bool] = True

    activation: str = "identity"
    norm: bool = False

    def validate(self) -> None:
        super().validate()
        check(self, "norm", not self.norm, "False (a bare conv has no norm; use ConvNormActSpec)")
        check(self, "activation", self.activation == "identity", "'identity' (a bare conv has no activation)")

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ConvNormAct(
            block.in_channels,
            block.out_channels,
            self.kernel_size,
            self.stride,
            groups=self.groups,
            norm=None,
            act=None,
            bias=False,
        )


@dataclass(frozen=True, kw_only=True)
class WideBasicSpec(BlockSpec):
    """Pre-activation basic block B(3,3) of width ``out_channels`` (Table 1: 16k, 32k, 64k)."""

    kind: ClassVar[str] = "wide_basic"
    supports_dilation: ClassVar[bool] = True

    out_channels: int
    stride: int = 1
    dropout: float = 0.0  # between the two convs (Sec. 2.4); the paper's WRN-28-10 numbers use 0 and 0.3
    activation: str = "relu"

    def validate(self) -> None:
        super().validate()
        check(self, "dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)")
        check_activation(self)

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return keeps_shape(block)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return WideBasicBlock(
            block.in_channels,
            block.out_channels,
            self.stride,
            self.dropout,
            act=get_activation(self.activation),
            identity_shortcut=block.identity_shortcut,
        )


class WideBasicBlock(nn.Module):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        dropout: float = 0.0,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        identity_shortcut: bool | None = None,
    ) -> None:
        super().__init__()
        self.preact = PreActivation(in_channels, act)  # bn0 -> relu
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride, act=act)  # conv0 -> bn1 -> relu
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, norm=None, act=None, bias=False)  # conv1
        # the release projects whenever the width changes; a same-width strided block projects too
        if identity_shortcut is None:  # built by hand: the spec's rule
            identity_shortcut = stride == 1 and in_channels == out_channels
        self.projects = not identity_shortcut
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False) if self.projects else nn.Identity()

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # pre-activation: the branch's last BN is conv1's (BN -> ReLU -> [dropout] -> bare conv2);
        # gamma = 0 there (beta = 0) makes ReLU output 0 and so the whole branch
        return init_last_norm(self.conv1.norm, zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)  # (B, C, H, W), BN-ReLU
        out = self.conv2(self.dropout(self.conv1(pre)))  # -> (B, C', H/s, W/s)
        return out + self.shortcut(pre if self.projects else x)  # projection reads the pre-activated input
