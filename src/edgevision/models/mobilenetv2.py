"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

Configuration: Table 2 of the paper (t = expansion, c = channels, n = repeats, s = first stride),
widths scaled as in the authors' TF-slim code and timm's ``mobilenetv2_*``: every width is
make_divisible(c * multiplier, 8), except the last 1x1 conv, which never shrinks below 1280.
"""

from __future__ import annotations

from ..blocks import InvertedResidualSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model
from .mobile_skeleton import mobile_network

# Table 2: (t, c, n, s)
_TABLE_2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenetv2(name: str, width_multiplier: float) -> NetworkSpec:
    stages = tuple(
        StageSpec.repeat(InvertedResidualSpec(out_channels=c, stride=s, expansion_ratio=t, activation="relu6"), n)
        for t, c, n, s in _TABLE_2
    )
    return mobile_network(
        name,
        stages,
        activation="relu6",
        stem_channels=32,
        last_channels=1280,
        last_width_scaling="at_least_base",  # the last 1x1 conv never shrinks below 1280
        width_multiplier=width_multiplier,
    )


@register_model("mobilenetv2_050", family="mobilenetv2")
def mobilenetv2_050() -> NetworkSpec:
    return mobilenetv2("mobilenetv2_050", 0.5)


@register_model("mobilenetv2_100", family="mobilenetv2")
def mobilenetv2_100() -> NetworkSpec:
    return mobilenetv2("mobilenetv2_100", 1.0)


@register_model("mobilenetv2_140", family="mobilenetv2")
def mobilenetv2_140() -> NetworkSpec:
    return mobilenetv2("mobilenetv2_140", 1.4)
