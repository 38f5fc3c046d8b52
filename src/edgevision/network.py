"""Stage and network specs: a network is a stem, a tuple of stages and a head.

A stage is an explicit tuple of block specs (papers' tables give "n repeats, the first with
stride s"; :meth:`StageSpec.repeat` writes that down). Widths in the blocks are the table's
values at width 1.0; ``width_multiplier`` and ``channel_divisor`` say how the network scales.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from .blocks.base import BlockSpec, ChannelScale
from .spec import Spec, check, check_positive

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
    head: BlockSpec  # any head kind with a ``num_classes`` field (ClassifierHeadSpec, LeViT's distillation head, ...)
    in_channels: int = 3
    width_multiplier: float = 1.0
    channel_divisor: int = 8
    input_size: int = 224  # the resolution the published numbers are for

    def validate(self) -> None:
        check(self, "name", bool(self.name), "a non-empty string")
        check(self, "stem", len(self.stem) > 0, "a non-empty tuple of block specs")
        check(self, "stages", len(self.stages) > 0, "a non-empty tuple of stage specs")
        check(self, "head", isinstance(getattr(self.head, "num_classes", None), int), "a head block spec with a num_classes field")
        check_positive(self, "in_channels", "width_multiplier", "channel_divisor", "input_size")

    @property
    def channel_scale(self) -> ChannelScale:
        return ChannelScale(self.width_multiplier, self.channel_divisor)

    def with_classes(self, num_classes: int) -> "NetworkSpec":
        return dataclasses.replace(self, head=dataclasses.replace(self.head, num_classes=num_classes))

    def with_input_channels(self, in_channels: int) -> "NetworkSpec":
        return dataclasses.replace(self, in_channels=in_channels)

    def with_width(self, width_multiplier: float) -> "NetworkSpec":
        return dataclasses.replace(self, width_multiplier=width_multiplier)
