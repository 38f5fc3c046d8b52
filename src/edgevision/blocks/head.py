"""Classification head: global average pool -> [hidden linear + activation] -> dropout -> classifier.

MobileNetV3 and GhostNet put a 1280-wide hidden layer (with bias, no norm) after pooling;
MobileNetV2, ShuffleNet, MobileOne, RepVGG and ResNet go straight to the classifier.
A 1x1 conv on a pooled 1x1 map and a Linear are the same operator; we use Linear.
Both ShuffleNet releases use a classifier without bias (``bias=False``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..layers import get_activation
from ..spec import check, check_choice, check_positive
from .base import WIDTH_SCALING, BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation

__all__ = ["HeadSpec", "ClassifierHeadSpec", "ClassifierHead"]


@dataclass(frozen=True, kw_only=True)
class HeadSpec(BlockSpec):
    """What every head kind shares: it maps the last feature map to ``num_classes`` logits (1 x 1 "output").

    ``NetworkSpec.with_classes`` and ``create_model(num_classes=...)`` replace ``num_classes`` on any head.
    """

    allowed_strides: ClassVar[tuple[int, ...]] = (1,)

    num_classes: int = 1000
    stride: int = 1

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def validate(self) -> None:
        super().validate()
        check_positive(self, "num_classes")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=self.num_classes)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return (1, 1)


@dataclass(frozen=True, kw_only=True)
class ClassifierHeadSpec(HeadSpec):
    kind: ClassVar[str] = "classifier_head"

    hidden_features: int | None = None
    hidden_activation: str = "relu"
    hidden_width_scaling: str = "fixed"
    dropout: float = 0.0
    bias: bool = True  # the classifier's bias

    def validate(self) -> None:
        super().validate()
        check_positive(self, "hidden_features")
        check(self, "dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)")
        check_activation(self, "hidden_activation")
        check_choice(self, "hidden_width_scaling", WIDTH_SCALING)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        hidden = None if self.hidden_features is None else scale(self.hidden_features, self.hidden_width_scaling)
        return BlockWidths(out_channels=self.num_classes, mid_channels=hidden)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ClassifierHead(
            block.in_channels,
            self.num_classes,
            block.mid_channels,
            get_activation(self.hidden_activation),
            self.dropout,
            bias=self.bias,
        )


class ClassifierHead(nn.Module):
    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_features: int | None = None,
        act=nn.ReLU,
        dropout: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if hidden_features is None:
            self.hidden = nn.Identity()
            classifier_in = in_features
        else:
            self.hidden = nn.Sequential(nn.Linear(in_features, hidden_features), act() if act else nn.Identity())
            classifier_in = hidden_features
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(classifier_in, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean((2, 3))  # (B, C, H, W) -> (B, C)
        return self.classifier(self.dropout(self.hidden(x)))  # (B, C) -> (B, num_classes)
