"""The features head: the network returns its feature pyramid (a list of maps) instead of logits.

``create_model(name, features_only=True, out_indices=...)`` puts this head on a spec cut after the
last level it needs (timm's ``features_only``). Levels are the last block output at each reduction
(``edgevision.features``); ``out_indices`` index that list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..spec import check
from .base import BlockSpec, ResolvedBlock

__all__ = ["FeaturesHeadSpec"]


@dataclass(frozen=True, kw_only=True)
class FeaturesHeadSpec(BlockSpec):
    kind: ClassVar[str] = "features_head"
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True
    is_features_head: ClassVar[bool] = True

    out_indices: tuple[int, ...]
    stride: int = 1

    def validate(self) -> None:
        super().validate()
        indices = self.out_indices
        check(self, "out_indices", len(indices) > 0 and all(i >= 0 for i in indices), "a non-empty tuple of level indices >= 0")
        check(self, "out_indices", list(indices) == sorted(set(indices)), "strictly increasing")

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return input_size

    def build(self, block: ResolvedBlock) -> nn.Module:
        return nn.Identity()  # the network collects the levels; nothing runs after the last one
