"""Stage and network specs: a network is a stem, a tuple of stages and a head.

A stage is an explicit tuple of block specs (papers' tables give "n repeats, the first with
stride s"; :meth:`StageSpec.repeat` writes that down). Widths in the blocks are the table's
values at width 1.0; ``width_multiplier`` and ``channel_divisor`` say how the network scales.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from .blocks.base import BlockSpec, ChannelScale
from .spec import OMIT_DEFAULT, Spec, check, check_choice, check_positive

#: ``NetworkSpec.output_stride`` values: 32 is the classification network; 16 and 8 turn the last
#: strides into dilation (DeepLabv3, Chen et al. 2017, Sec. 3.1; LR-ASPP, Howard et al. 2019, Sec. 6.1.2)
OUTPUT_STRIDES = (8, 16, 32)

__all__ = ["StageSpec", "NetworkSpec"]


@dataclass(frozen=True, kw_only=True)
class StageSpec(Spec):
    kind: ClassVar[str] = "stage"

    blocks: tuple[BlockSpec, ...]

    def validate(self) -> None:
        check(self, "blocks", len(self.blocks) > 0, "a non-empty tuple of block specs")

    @classmethod
    def repeat(cls, block: BlockSpec, depth: int, **later_changes) -> "StageSpec":
        """``depth`` copies of ``block``; every copy after the first has stride 1 (and ``later_changes``)."""
        if depth < 1:
            raise ValueError(f"StageSpec.repeat depth must be >= 1, got {depth}")
        later = dataclasses.replace(block, stride=1, **later_changes)  # type: ignore[call-arg]
        return cls(blocks=(block,) + (later,) * (depth - 1))

    @property
    def depth(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True, kw_only=True)
class NetworkSpec(Spec):
    kind: ClassVar[str] = "network"

    name: str
    stem: tuple[BlockSpec, ...]
    stages: tuple[StageSpec, ...]
    # a classifier head kind with a ``num_classes`` field (ClassifierHeadSpec, LeViT's distillation head, ...),
    # a ``FeaturesHeadSpec`` (the network returns a list of feature maps) or None (backbone only: the last map)
    head: BlockSpec | None
    in_channels: int = 3
    width_multiplier: float = 1.0
    channel_divisor: int = 8
    input_size: int = 224  # the resolution the published numbers are for
    # reduction of the last feature map; None: as designed (32 for most, 64 for LeViT); 32, 16 or 8 turn
    # the strides beyond it into dilation (``resolve``)
    output_stride: int | None = field(default=None, metadata={OMIT_DEFAULT: True})
    # trailing stages that only widen the features for the classifier (MobileNetV2's 1x1 conv to 1280,
    # GhostNet's to 960): not a feature level, as in timm's ``feature_info``
    pre_logits_stages: int = field(default=0, metadata={OMIT_DEFAULT: True})
    # the eps of every BatchNorm in the network; None: each block's own (PyTorch's 1e-5 unless the block
    # says otherwise). The release a model follows fixes it (TF's slim.batch_norm: 1e-3), and a checkpoint
    # trained with another eps gives other feature maps from the same tensors (the importer carries it)
    norm_eps: float | None = field(default=None, metadata={OMIT_DEFAULT: True})

    def validate(self) -> None:
        check(self, "name", bool(self.name), "a non-empty string")
        check(self, "stem", len(self.stem) > 0, "a non-empty tuple of block specs")
        features_head = getattr(self.head, "is_features_head", False)  # a pyramid cut inside the stem has no stages
        check(self, "stages", len(self.stages) > 0 or features_head, "a non-empty tuple of stage specs")
        if self.head is not None and not features_head:
            check(self, "head", isinstance(getattr(self.head, "num_classes", None), int), "None, a features head or a head block spec with a num_classes field")
        check_positive(self, "in_channels", "width_multiplier", "channel_divisor", "input_size")
        if self.output_stride is not None:
            check_choice(self, "output_stride", OUTPUT_STRIDES)
        check(self, "norm_eps", self.norm_eps is None or self.norm_eps > 0, "None or > 0")
        check(self, "pre_logits_stages", self.pre_logits_stages == 0 or 0 < self.pre_logits_stages < len(self.stages), f"in [0, {len(self.stages)})")

    @property
    def has_classifier(self) -> bool:
        return self.head is not None and hasattr(self.head, "num_classes")

    @property
    def channel_scale(self) -> ChannelScale:
        return ChannelScale(self.width_multiplier, self.channel_divisor)

    def with_classes(self, num_classes: int) -> "NetworkSpec":
        if not self.has_classifier:
            raise ValueError(f"{self.name} has no classifier head (head={type(self.head).__name__}), so it has no num_classes to change")
        # a head that wraps another (a pruned FixedWidthSpec) knows how to pass the new count inside
        retarget = getattr(self.head, "with_classes", None)
        head = retarget(num_classes) if callable(retarget) else dataclasses.replace(self.head, num_classes=num_classes)
        return dataclasses.replace(self, head=head)

    def with_head(self, head: BlockSpec | None) -> "NetworkSpec":
        """The same network with another head (None: backbone only)."""
        return dataclasses.replace(self, head=head)

    def with_output_stride(self, output_stride: int | None) -> "NetworkSpec":
        return dataclasses.replace(self, output_stride=output_stride)

    def with_norm_eps(self, norm_eps: float | None) -> "NetworkSpec":
        return dataclasses.replace(self, norm_eps=norm_eps)

    def with_input_channels(self, in_channels: int) -> "NetworkSpec":
        return dataclasses.replace(self, in_channels=in_channels)

    def with_width(self, width_multiplier: float) -> "NetworkSpec":
        return dataclasses.replace(self, width_multiplier=width_multiplier)
