"""ShuffleNet V2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
ECCV 2018).

Configuration: Table 5 of the paper (conv1 3x3/2, 24 -> maxpool 3x3/2 -> stages of 4, 8, 4 units,
the first of each with stride 2 -> conv5 1x1 -> global pool -> FC), widths per size written out as
in the table and the authors' release (megvii-model/ShuffleNet-Series, ShuffleNetV2/network.py), as
the sizes are not a uniform scaling (the stem stays 24, conv5 is 1024 or 2048). ``channel_divisor=2``
leaves every published width as it is (all are even) and keeps any other width multiplier even, as
the channel split needs.
As released: the classifier has no bias, and only the 2.0x model has dropout (0.2) before it.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, MaxPoolSpec, ShuffleNetV2UnitSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

# Table 5: output channels of stages 2, 3, 4 and conv5
_WIDTHS = {
    "0.5x": (48, 96, 192, 1024),
    "1.0x": (116, 232, 464, 1024),
    "1.5x": (176, 352, 704, 1024),
    "2.0x": (244, 488, 976, 2048),
}
_DEPTHS = (4, 8, 4)  # Table 5: 1 + 3, 1 + 7, 1 + 3 units


def shufflenet_v2(name: str, size: str, layout: str = "megvii") -> NetworkSpec:
    """``layout="torchvision"``: torchvision's units and its classifier with a bias (models/compat.py)."""
    *stage_widths, conv5_width = _WIDTHS[size]
    stages = tuple(
        StageSpec.repeat(ShuffleNetV2UnitSpec(out_channels=width, stride=2, layout=layout), depth)
        for width, depth in zip(stage_widths, _DEPTHS)
    )
    conv5 = ConvNormActSpec(out_channels=conv5_width, kernel_size=1, activation="relu")
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=24, kernel_size=3, stride=2, activation="relu"), MaxPoolSpec()),
        stages=stages + (StageSpec(blocks=(conv5,)),),
        head=ClassifierHeadSpec(bias=layout == "torchvision", dropout=0.2 if size == "2.0x" and layout == "megvii" else 0.0),
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        width_multiplier=1.0,
        channel_divisor=2,
    )


@register_model("shufflenet_v2_x0_5", family="shufflenet_v2")
def shufflenet_v2_x0_5() -> NetworkSpec:
    return shufflenet_v2("shufflenet_v2_x0_5", "0.5x")


@register_model("shufflenet_v2_x1_0", family="shufflenet_v2")
def shufflenet_v2_x1_0() -> NetworkSpec:
    return shufflenet_v2("shufflenet_v2_x1_0", "1.0x")


@register_model("shufflenet_v2_x1_5", family="shufflenet_v2")
def shufflenet_v2_x1_5() -> NetworkSpec:
    return shufflenet_v2("shufflenet_v2_x1_5", "1.5x")


@register_model("shufflenet_v2_x2_0", family="shufflenet_v2")
def shufflenet_v2_x2_0() -> NetworkSpec:
    return shufflenet_v2("shufflenet_v2_x2_0", "2.0x")
