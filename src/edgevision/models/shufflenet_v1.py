"""ShuffleNet V1 (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
Mobile Devices", CVPR 2018).

Configuration: Table 1 of the paper (conv1 3x3/2 -> maxpool 3x3/2 -> stages of 4, 8, 4 units, the
first of each with stride 2 -> global pool -> FC), with every width written out as in the authors'
release (megvii-model/ShuffleNet-Series, ShuffleNetV1/network.py), because the sizes there are not a
uniform scaling of 1.0x: the 1.5x model keeps a 24-wide stem, the 0.5x g=8 model uses 16. The
network therefore uses ``channel_divisor=1`` and ``width_multiplier=1.0``; the bottleneck is
out_channels / 4 (Sec. 3.3). The classifier has no bias, as released.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, MaxPoolSpec, ShuffleNetV1UnitSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

# (stem width, stage 2, stage 3, stage 4 widths) per (groups, size).
# 1.0x: Table 1 (g = 1, 2, 3, 4, 8). 0.5x and 2.0x (g = 3): ShuffleNetV1/network.py of the release.
_WIDTHS = {
    (1, "1.0x"): (24, 144, 288, 576),
    (2, "1.0x"): (24, 200, 400, 800),
    (3, "0.5x"): (12, 120, 240, 480),
    (3, "1.0x"): (24, 240, 480, 960),
    (3, "2.0x"): (48, 480, 960, 1920),
    (4, "1.0x"): (24, 272, 544, 1088),
    (8, "1.0x"): (24, 384, 768, 1536),
}
_DEPTHS = (4, 8, 4)  # Table 1: 1 + 3, 1 + 7, 1 + 3 units


def shufflenet_v1(name: str, groups: int, size: str) -> NetworkSpec:
    stem_width, *stage_widths = _WIDTHS[(groups, size)]
    stages = tuple(
        StageSpec.repeat(
            ShuffleNetV1UnitSpec(out_channels=width, stride=2, groups=groups, group_first_pointwise=index > 0),
            depth,
            group_first_pointwise=True,
        )
        for index, (width, depth) in enumerate(zip(stage_widths, _DEPTHS))
    )
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=stem_width, kernel_size=3, stride=2, activation="relu"), MaxPoolSpec()),
        stages=stages,
        head=ClassifierHeadSpec(bias=False),
        width_multiplier=1.0,
        channel_divisor=1,
    )


@register_model("shufflenet_v1_g3_x0_5", family="shufflenet_v1")
def shufflenet_v1_g3_x0_5() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g3_x0_5", 3, "0.5x")


@register_model("shufflenet_v1_g3_x1_0", family="shufflenet_v1")
def shufflenet_v1_g3_x1_0() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g3_x1_0", 3, "1.0x")


@register_model("shufflenet_v1_g3_x2_0", family="shufflenet_v1")
def shufflenet_v1_g3_x2_0() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g3_x2_0", 3, "2.0x")


@register_model("shufflenet_v1_g1_x1_0", family="shufflenet_v1")
def shufflenet_v1_g1_x1_0() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g1_x1_0", 1, "1.0x")


@register_model("shufflenet_v1_g2_x1_0", family="shufflenet_v1")
def shufflenet_v1_g2_x1_0() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g2_x1_0", 2, "1.0x")


@register_model("shufflenet_v1_g4_x1_0", family="shufflenet_v1")
def shufflenet_v1_g4_x1_0() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g4_x1_0", 4, "1.0x")


@register_model("shufflenet_v1_g8_x1_0", family="shufflenet_v1")
def shufflenet_v1_g8_x1_0() -> NetworkSpec:
    return shufflenet_v1("shufflenet_v1_g8_x1_0", 8, "1.0x")
