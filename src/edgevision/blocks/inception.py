"""Inception modules of every version as one block kind: parallel branches, concatenated.

One spec describes them all, because every Inception module is "branches of conv/pool layers,
concatenated along channels":

- GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, Fig. 2b / Table 1):
  1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1;
- Inception v3 (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016, Figs. 5-7, 10):
  factorized 3x3 pairs, 1x7 / 7x1 pairs, and the expanded-filter-bank module whose branch ends in a
  *split* (1x3 and 3x1 applied to the same tensor, concatenated) — ``InceptionBranchSpec.split``;
  grid reductions (Fig. 10) are modules with stride-2 valid convs and a max-pool branch;
- Inception v4 (Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual
  Connections", AAAI 2017, Figs. 3-8): the stem's mixed blocks, Inception-A/B/C, Reduction-A/B;
- Inception-ResNet v2 (same paper, Figs. 16-19): branches -> concat -> 1x1 linear conv (with bias,
  no BN) back to the input width, scaled by ``residual_scale`` (Sec. 3.3: 0.17 / 0.10 / 0.20 in the
  authors' TF-slim release) and added to the input -> ReLU (``residual_activation``).

A module with a single one-layer branch is a plain conv -> BN -> ReLU; the models use that for
stems so that every conv of a family carries the same BatchNorm convention.

BatchNorm follows each family's official code: eps 1e-3 everywhere (TF and torchvision's ports);
``norm_scale=False`` is TF-slim's ``batch_norm(scale=False)`` default (Inception v4 / Inception-ResNet
v2): a learned shift only, gamma a constant 1 (:class:`BatchNormWithoutScale`), which is why their
trainable-parameter counts differ from PyTorch ports that learn gamma.

Deploy form: every BatchNorm folds into its conv (``ConvNormAct``); a residual module also folds
its ``residual_scale`` into the 1x1 up-projection, so deploy is ``act(x + up(concat))``.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from ..initialization import init_last_layer
from ..layers import ConvNormAct
from ..spec import Spec, check, check_choice, check_positive
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock
from .conv import PADDINGS, pooled_size

__all__ = [
    "BatchNormWithoutScale",
    "InceptionBranch",
    "InceptionBranchSpec",
    "InceptionConvSpec",
    "InceptionModule",
    "InceptionModuleSpec",
    "InceptionPoolSpec",
]


@dataclass(frozen=True, kw_only=True)
class InceptionConvSpec(Spec):
    """One conv -> BN -> ReLU layer of a branch; ``kernel_size`` is (height, width): (1, 7), (7, 1) ..."""

    kind: ClassVar[str] = "inception_conv"

    out_channels: int
    kernel_size: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: str = "same"

    def validate(self) -> None:
        check_positive(self, "out_channels", "stride")
        check(self, "kernel_size", all(k > 0 for k in self.kernel_size), "a (height, width) pair of positive ints")
        check_choice(self, "padding", PADDINGS)
        if self.padding == "same":
            check(self, "kernel_size", all(k % 2 for k in self.kernel_size), "odd with padding='same'")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        height = pooled_size((size[0], size[0]), self.kernel_size[0], self.stride, self.padding)[0]
        width = pooled_size((size[1], size[1]), self.kernel_size[1], self.stride, self.padding)[0]
        return (height, width)


@dataclass(frozen=True, kw_only=True)
class InceptionPoolSpec(Spec):
    """A pooling layer of a branch (keeps the channels).

    ``count_include_pad``: torchvision's Inception v3 averages over the zero padding (PyTorch's
    default); TF-slim's 'SAME' average pooling (Inception v4 / Inception-ResNet v2) does not.
    ``ceil_mode``: GoogLeNet's Caffe-style pooling.
    """

    kind: ClassVar[str] = "inception_pool"

    mode: str = "max"
    kernel_size: int = 3
    stride: int = 1
    padding: str = "same"
    ceil_mode: bool = False
    count_include_pad: bool = True

    def validate(self) -> None:
        check_choice(self, "mode", ("max", "avg"))
        check_positive(self, "kernel_size", "stride")
        check_choice(self, "padding", PADDINGS)
        if self.padding == "same":
            check(self, "kernel_size", self.kernel_size % 2 == 1, "odd with padding='same'")

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return pooled_size(size, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def build(self) -> nn.Module:
        padding = self.kernel_size // 2 if self.padding == "same" else 0
        if self.mode == "max":
            return nn.MaxPool2d(self.kernel_size, self.stride, padding, ceil_mode=self.ceil_mode)
        return nn.AvgPool2d(
            self.kernel_size, self.stride, padding, ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad
        )


@dataclass(frozen=True, kw_only=True)
class InceptionBranchSpec(Spec):
    """Layers applied in sequence; ``split`` (Inception v3 Fig. 7, v4 Inception-C): convs applied in
    parallel to the branch's output and concatenated, e.g. 1x3 and 3x1 on the same 384-wide tensor."""

    kind: ClassVar[str] = "inception_branch"

    layers: tuple[InceptionConvSpec | InceptionPoolSpec, ...]
    split: tuple[InceptionConvSpec, ...] = ()

    def validate(self) -> None:
        check(self, "layers", len(self.layers) > 0, "a non-empty tuple of InceptionConvSpec / InceptionPoolSpec")
        check(self, "split", len(self.split) != 1, "empty or at least two parallel convs (one conv belongs in layers)")
        check(self, "split", all(conv.stride == 1 for conv in self.split), "stride-1 convs")

    def out_channels(self, in_channels: int) -> int:
        if self.split:
            return sum(conv.out_channels for conv in self.split)
        convs = [layer for layer in self.layers if isinstance(layer, InceptionConvSpec)]
        return convs[-1].out_channels if convs else in_channels  # a pool-only branch keeps its input

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        for layer in self.layers:
            size = layer.output_size(size)
        return size


@dataclass(frozen=True, kw_only=True)
class InceptionModuleSpec(BlockSpec):
    """Parallel branches concatenated along channels; optionally an Inception-ResNet residual.

    Output width: the sum of the branches' widths, or the input width for a residual module.
    ``stride`` is implied by the layers (1, or 2 for grid reductions) and checked against them.
    """

    kind: ClassVar[str] = "inception_module"

    branches: tuple[InceptionBranchSpec, ...]
    residual_scale: float | None = None  # Inception-ResNet: x + scale * up(concat)
    residual_activation: bool = True  # ReLU after the residual sum (False: the last block8 of Inception-ResNet v2)
    norm_eps: float = 1e-3
    norm_scale: bool = True  # False: TF-slim's batch_norm without gamma

    @property
    def stride(self) -> int:
        strides = {self._branch_stride(branch) for branch in self.branches}
        return strides.pop() if len(strides) == 1 else 0  # 0: branches disagree, rejected by validate

    @staticmethod
    def _branch_stride(branch: InceptionBranchSpec) -> int:
        stride = 1
        for layer in branch.layers:
            stride *= layer.stride
        return stride

    def validate(self) -> None:
        check(self, "branches", len(self.branches) > 0, "a non-empty tuple of InceptionBranchSpec")
        strides = [self._branch_stride(branch) for branch in self.branches]
        check(self, "branches", len(set(strides)) == 1, f"branches with one common total stride (theirs: {strides})")
        super().validate()  # stride 1 or 2
        if self.residual_scale is not None:
            check(self, "residual_scale", self.residual_scale > 0, "a positive float or None")
            check(self, "residual_scale", self.stride == 1, "None for a module with stride 2 (no residual across a reduction)")
        else:
            check(self, "residual_activation", self.residual_activation, "True without a residual (no sum to activate)")
        check_positive(self, "norm_eps")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        if scale.multiplier != 1.0:
            raise ValueError(
                f"InceptionModuleSpec holds the paper's branch widths at width 1.0 and does not scale them; "
                f"got width_multiplier={scale.multiplier}: write a spec with the widths you want instead"
            )
        concat = sum(branch.out_channels(in_channels) for branch in self.branches)
        if self.residual_scale is not None:  # the up-projection restores the input width
            return BlockWidths(out_channels=in_channels, mid_channels=concat)
        return BlockWidths(out_channels=concat, mid_channels=concat)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        sizes = {branch.output_size(input_size) for branch in self.branches}
        if len(sizes) != 1:
            raise ValueError(
                f"InceptionModuleSpec.branches give different output sizes {sorted(sizes)} at input "
                f"{input_size[0]}x{input_size[1]}; make their padding agree ('same' vs 'valid')"
            )
        return sizes.pop()

    def _single_conv_branch(self) -> bool:
        """One branch ending in a conv, no split, no residual: out is that conv's width (prunable as ``out``)."""
        return (
            len(self.branches) == 1 and not self.branches[0].split and self.residual_scale is None
            and any(isinstance(layer, InceptionConvSpec) for layer in self.branches[0].layers)
        )

    def inner_widths(self) -> dict[str, int]:
        """Width-surgery protocol (``edgevision.prune``): the branch convs whose width stays inside the module.

        ``"branches.<b>.layers.<l>"``: every conv of a branch but the one that feeds the concat (a
        1x1 reduce before a 3x3 / 5x5, the first of a factorized pair); with a ``split`` the last
        layer feeds the parallel convs, so it is internal too.
        """
        widths = {}
        for b, branch in enumerate(self.branches):
            convs = [l for l, layer in enumerate(branch.layers) if isinstance(layer, InceptionConvSpec)]
            for l in convs if branch.split else convs[:-1]:
                widths[f"branches.{b}.layers.{l}"] = branch.layers[l].out_channels
        return widths

    def with_inner_widths(self, widths: dict[str, int]) -> "InceptionModuleSpec":
        branches = list(self.branches)
        for name, width in widths.items():
            _, b, _, l = name.split(".")
            branch = branches[int(b)]
            layers = list(branch.layers)
            layers[int(l)] = dataclasses.replace(layers[int(l)], out_channels=width)
            branches[int(b)] = dataclasses.replace(branch, layers=tuple(layers))
        return dataclasses.replace(self, branches=tuple(branches))

    def has_identity_shortcut(self, block: ResolvedBlock) -> bool:
        return self.residual_scale is not None  # Inception-ResNet: act(x + scale * up(concat)), stride 1, width kept

    def build(self, block: ResolvedBlock) -> nn.Module:
        norm = functools.partial(nn.BatchNorm2d if self.norm_scale else BatchNormWithoutScale, eps=self.norm_eps)
        specs = self.branches
        if self._single_conv_branch() and block.out_channels != self.widths(block.in_channels, ChannelScale(1.0, 1)).out_channels:
            # a plain conv module (a stem) pruned to another out width: its last conv takes the resolved width
            (branch,) = specs
            last = max(l for l, layer in enumerate(branch.layers) if isinstance(layer, InceptionConvSpec))
            layers = list(branch.layers)
            layers[last] = dataclasses.replace(layers[last], out_channels=block.out_channels)
            specs = (dataclasses.replace(branch, layers=tuple(layers)),)
        branches = [InceptionBranch(branch, block.in_channels, norm) for branch in specs]
        up = None
        if self.residual_scale is not None:
            up = nn.Conv2d(block.mid_channels, block.in_channels, 1, bias=True)  # linear: no BN, no ReLU (Fig. 16-19)
        return InceptionModule(branches, up, self.residual_scale, self.residual_activation)


class BatchNormWithoutScale(nn.BatchNorm2d):
    """TF-slim's ``batch_norm(scale=False)``: normalize, then add a learned shift (beta) only.

    Gamma is a constant 1 held as a buffer, so it is not a parameter (TF-slim creates no gamma
    variable) but folding (``fold_batchnorm`` reads ``.weight``) works unchanged.
    """

    def __init__(self, num_features: int, eps: float = 1e-3) -> None:
        super().__init__(num_features, eps=eps)
        del self.weight
        self.register_buffer("weight", torch.ones(num_features))


class InceptionBranch(nn.Module):
    def __init__(self, spec: InceptionBranchSpec, in_channels: int, norm: Callable[[int], nn.Module]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for layer in spec.layers:
            if isinstance(layer, InceptionPoolSpec):
                layers.append(layer.build())
                continue
            out_channels = layer.out_channels
            padding = None if layer.padding == "same" else 0
            layers.append(ConvNormAct(channels, out_channels, layer.kernel_size, layer.stride, norm=norm, padding=padding))
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.split = nn.ModuleList(
            ConvNormAct(channels, conv.out_channels, conv.kernel_size, norm=norm) for conv in spec.split
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)  # (B, C, H, W) -> (B, C', H/s, W/s)
        if len(self.split):
            x = torch.cat([conv(x) for conv in self.split], dim=1)  # (B, C', h, w) -> (B, sum C_i, h, w)
        return x


class InceptionModule(nn.Module):
    def __init__(
        self,
        branches: list[InceptionBranch],
        up: nn.Conv2d | None = None,
        residual_scale: float | None = None,
        residual_activation: bool = True,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.up = up
        self.residual_scale = residual_scale
        self.act = nn.ReLU() if up is not None and residual_activation else nn.Identity()

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # the residual branch ends in the linear 1x1 up-projection (no BN after it, Fig. 16-19): zero it
        return () if self.up is None else init_last_layer(self.up, zero_init_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([branch(x) for branch in self.branches], dim=1)  # (B, C, H, W) -> (B, sum C_i, H/s, W/s)
        if self.up is None:
            return out
        return self.act(x + self.residual_scale * self.up(out))  # 1x1 back to C, scaled residual sum

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold the residual scale into the up-projection (BatchNorm is already folded by ConvNormAct)."""
        if self.up is None or self.residual_scale == 1.0:
            return
        self.up.weight.mul_(self.residual_scale)
        self.up.bias.mul_(self.residual_scale)
        self.residual_scale = 1.0
