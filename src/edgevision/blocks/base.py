"""What every block spec shares: widths after the multiplier, spatial size, the resolved record.

A block spec holds *base* widths (the numbers in the paper's table at width 1.0). The resolve
step (``edgevision.resolve``) walks a network spec, asks each block for its widths under the
network's :class:`ChannelScale`, and records a :class:`ResolvedBlock`: the exact channels,
stride and input H x W the module builder, the cost model and the latency tables all read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from ..layers.activations import ACTIVATIONS
from ..layers.make_divisible import make_divisible
from ..spec import OMIT_DEFAULT, Spec, check, check_choice, check_positive, check_stride

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "BlockSpec",
    "BlockWidths",
    "ChannelScale",
    "ResolvedBlock",
    "WIDTH_SCALING",
    "check_activation",
    "check_groups_divide",
    "keeps_shape",
]

# How a width reacts to the network's width multiplier:
#   "scaled"         make_divisible(base * multiplier)        (almost every layer)
#   "fixed"          the base width whatever the multiplier   (MobileNetV3 / GhostNet 1280-d head)
#   "at_least_base"  max(base, scaled)                        (MobileNetV2's last 1x1 conv, 1280)
WIDTH_SCALING = ("scaled", "fixed", "at_least_base")


@dataclass(frozen=True)
class ChannelScale:
    """The network-wide width rule: ``make_divisible(channels * multiplier, divisor)``."""

    multiplier: float = 1.0
    divisor: int = 8

    def __call__(self, channels: float, scaling: str = "scaled") -> int:
        if scaling == "fixed":
            return int(channels)
        scaled = make_divisible(channels * self.multiplier, self.divisor)
        if scaling == "at_least_base":
            return max(int(channels), scaled)
        return scaled

    def round(self, channels: float) -> int:
        """Round an already-scaled width (e.g. ``in_channels * expansion_ratio``) to the divisor."""
        return make_divisible(channels, self.divisor)


@dataclass(frozen=True)
class BlockWidths:
    """Widths a block derives from its input width and the scale."""

    out_channels: int
    mid_channels: int | None = None  # expanded / bottleneck / branch width, where the block has one
    se_channels: int | None = None  # squeeze-excite (or attention) reduced width, where it has one


def check_activation(spec: Spec, field: str = "activation") -> None:
    check_choice(spec, field, ACTIVATIONS)


def check_groups_divide(spec: Spec, label: str, *widths: int) -> None:
    """Resolve-time check that ``spec.groups`` divides each resolved width (``label`` names them)."""
    groups = spec.groups  # type: ignore[attr-defined]
    if any(width % groups for width in widths):
        raise ValueError(
            f"{type(spec).__name__}.groups={groups} must divide the resolved {label} "
            f"({' -> '.join(map(str, widths))}); change groups or the width multiplier"
        )


def keeps_shape(block: "ResolvedBlock") -> bool:
    """Stride 1 and the same width in and out: where a residual kind's shortcut is the identity."""
    return block.stride == 1 and block.in_channels == block.out_channels


@dataclass(frozen=True, kw_only=True)
class BlockSpec(Spec):
    """Base of every block kind. Subclasses declare ``out_channels`` and ``stride`` fields."""

    #: strides this block kind supports; ``validate`` checks ``stride`` against it
    allowed_strides: ClassVar[tuple[int, ...]] = (1, 2)
    #: the block keeps its input width (ignores ``out_channels`` under the multiplier), e.g. pooling
    preserves_channels: ClassVar[bool] = False
    #: the block is convolutional with "same" padding, so ``output_stride`` may turn its stride into
    #: dilation (``edgevision.dilation``); attention tied to a token grid and valid convs cannot
    supports_dilation: ClassVar[bool] = False
    #: the block is tied to its input grid (an attention bias per token pair of the resolved H x W), so an
    #: exported graph cannot take another size (``export_onnx(dynamic_hw=True)`` refuses)
    fixed_input_size: ClassVar[bool] = False

    def validate(self) -> None:
        check_stride(self, self.allowed_strides)
        if hasattr(self, "out_channels"):
            check_positive(self, "out_channels")

    # ---- resolve-time hooks ---------------------------------------------------------------
    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        """Output (and inner) widths for a given input width. Override for inner widths."""
        if self.preserves_channels:
            return BlockWidths(out_channels=in_channels)
        return BlockWidths(out_channels=scale(self.out_channels))  # type: ignore[attr-defined]

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        """Raise ``ValueError`` when resolved widths are impossible (e.g. not divisible by groups)."""

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size after the block; every zoo conv uses 'same' padding: ceil(H / stride)."""
        stride = self.stride  # type: ignore[attr-defined]
        return (math.ceil(input_size[0] / stride), math.ceil(input_size[1] / stride))

    def has_identity_shortcut(self, block: "ResolvedBlock") -> bool:
        """True when the built module adds its input, unchanged, to its output: ``out = act(f(x) + x)``.

        The one source of truth for layer skipping, pruning (the tied widths) and zero-init: each
        residual kind overrides it, and its ``build`` passes the answer to the module, which does not
        decide again. False for plain blocks, concatenations (ShuffleNet V2, DenseNet) and projection
        shortcuts (a 1x1 conv is not the identity).
        """
        return False

    def build(self, block: "ResolvedBlock") -> "nn.Module":
        """The train-form module for this resolved block."""
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")

    def deploy_equivalent(self) -> "BlockSpec":
        """A canonical spec whose deploy form is the same module as this one's (latency tables key deploy
        measurements by it, so blocks that ship identically share one entry); override where train-only
        fields do not survive re-parameterization."""
        return self


@dataclass(frozen=True, kw_only=True)
class ResolvedBlock(Spec):
    """One block with every width and size decided. Produced only by ``edgevision.resolve``."""

    kind: ClassVar[str] = "resolved_block"

    section: str  # "stem", "stages" or "head"
    stage_index: int  # index of the stage, -1 for stem and head
    block_index: int  # index inside the stem / stage; 0 for the head
    spec: BlockSpec
    in_channels: int
    out_channels: int
    mid_channels: int | None
    se_channels: int | None
    stride: int  # the stride the block runs with: 1 where ``output_stride`` turned the spec's stride into dilation
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    # dilation of the block's spatial convs up to its (former) strided one; the convs after a stride that
    # became dilation use ``dilation * spec.stride`` (DeepLab, Chen et al. 2017, Sec. 3.1). Left out of the
    # JSON at 1, so latency-table keys of undilated blocks are unchanged.
    dilation: int = field(default=1, metadata={OMIT_DEFAULT: True})

    @property
    def dilated(self) -> bool:
        """True when ``output_stride`` changed this block (a stride became dilation, or its convs dilate)."""
        return self.dilation != 1 or self.stride != getattr(self.spec, "stride", 1)

    def build(self) -> "nn.Module":
        """The train-form module: ``spec.build`` with the dilation applied (every builder goes through here)."""
        module = self.spec.build(self)
        if self.dilated:
            from ..dilation import dilate_block

            dilate_block(module, self)
        return module

    @property
    def path(self) -> str:
        """Module path of this block inside the built network (``stages.2.1``)."""
        if self.section == "head":
            return "head"
        if self.section == "stem":
            return f"stem.{self.block_index}"
        return f"stages.{self.stage_index}.{self.block_index}"

    @property
    def identity_shortcut(self) -> bool:
        """Whether the built block adds its input unchanged (see ``BlockSpec.has_identity_shortcut``).

        A property, not a field: computed from the spec and the resolved widths/stride, so JSON and
        latency-table keys do not change.
        """
        return self.spec.has_identity_shortcut(self)

    def validate(self) -> None:
        check_choice(self, "section", ("stem", "stages", "head"))
        check_positive(self, "in_channels", "out_channels", "mid_channels", "se_channels", "stride", "dilation")
        check(self, "input_size", all(s > 0 for s in self.input_size), "positive (H, W)")
