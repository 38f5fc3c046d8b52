"""RepGhost module and bottleneck (Chen et al., "RepGhost: A Hardware-Efficient Ghost Module via
Re-parameterization", 2022, Sec. 3.2-3.3 and Fig. 2/3).

RepGhost replaces the Ghost module's concatenation by an addition that re-parameterization removes:

    train:  y = act( BN(dw_conv(x1)) + BN'(x1) ),   x1 = ReLU?(BN(conv1x1(x)))
    deploy: y = act( dw_conv'(x1) )                 (BN' folded in as a per-channel centred 1-hot kernel)

The module keeps its width (no "ratio": primary and cheap maps are both C wide) and the activation
moves after the sum. ``feature_reuse`` picks the re-parameterized branch: ``"batchnorm"`` (the
default of the authors' code, ChengpengChen/RepGhost ``model/repghost.py``), ``"identity"`` (their
``repid`` ablation) or ``"none"`` (``norep``: no branch, nothing to fuse).

The bottleneck is the Ghost bottleneck (``blocks/ghost.py``) built with RepGhost modules, with the
authors' widths: the table's absolute "#mid", make_divisible(mid * multiplier, 4), SE width
make_divisible(mid * se_ratio, 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, ClassVar

import torch
from torch import nn

from ..layers import ConvNormAct, fold_batchnorm, identity_kernel
from ..spec import check_choice
from .ghost import BaseGhostBottleneckSpec

__all__ = ["RepGhostBottleneckSpec", "RepGhostModule", "FEATURE_REUSE"]

FEATURE_REUSE = ("batchnorm", "identity", "none")


@dataclass(frozen=True, kw_only=True)
class RepGhostBottleneckSpec(BaseGhostBottleneckSpec):
    kind: ClassVar[str] = "repghost_bottleneck"
    supports_dilation: ClassVar[bool] = True

    cheap_kernel_size: int = 3  # the RepGhost module's depthwise conv
    feature_reuse: str = "batchnorm"  # the re-parameterized branch beside the cheap conv

    def validate(self) -> None:
        super().validate()
        check_choice(self, "cheap_kernel_size", (3, 5, 7))
        check_choice(self, "feature_reuse", FEATURE_REUSE)

    def feature_module(self) -> Callable[..., nn.Module]:
        return partial(RepGhostModule, kernel_size=self.cheap_kernel_size, feature_reuse=self.feature_reuse)


class RepGhostModule(nn.Module):
    """1x1 primary conv -> (cheap depthwise conv + re-parameterizable reuse branch) -> activation.

    ``reparameterize()`` folds the reuse branch into the cheap conv: deploy form is
    primary conv(+bias) -> act -> one depthwise conv(+bias) -> act.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        feature_reuse: str = "batchnorm",
    ) -> None:
        super().__init__()
        if feature_reuse not in FEATURE_REUSE:
            raise ValueError(f"RepGhostModule feature_reuse must be one of {', '.join(FEATURE_REUSE)}, got {feature_reuse!r}")
        self.primary = ConvNormAct(in_channels, out_channels, 1, act=act)
        self.cheap = ConvNormAct(out_channels, out_channels, kernel_size, groups=out_channels, act=None)
        self.reuse: nn.Module | None = {
            "batchnorm": lambda: nn.BatchNorm2d(out_channels),
            "identity": nn.Identity,
            "none": lambda: None,
        }[feature_reuse]()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.primary(x)  # (B, C_in, H, W) -> (B, C, H, W)
        out = self.cheap(x) if self.reuse is None else self.cheap(x) + self.reuse(x)  # (B, C, H, W)
        return self.act(out)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the reuse branch (BatchNorm or identity) into the cheap depthwise conv."""
        self.primary.reparameterize()  # no-ops when the walker has already folded them (children-first)
        self.cheap.reparameterize()
        if self.reuse is None:
            return
        conv = self.cheap.conv
        kernel = identity_kernel(conv.out_channels, conv.groups, conv.kernel_size[0], like=conv.weight)
        if isinstance(self.reuse, nn.modules.batchnorm._BatchNorm):
            kernel, bias = fold_batchnorm(kernel, None, self.reuse)
        else:
            bias = torch.zeros_like(conv.bias)
        conv.weight.add_(kernel)
        conv.bias.add_(bias)
        self.reuse = None
