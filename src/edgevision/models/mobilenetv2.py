"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

Configuration: Table 2 of the paper (t = expansion, c = channels, n = repeats, s = first stride),
widths scaled as in the authors' TF-slim code and timm's ``mobilenetv2_*``: every width is
make_divisible(c * multiplier, 8), except the last 1x1 conv, which never shrinks below 1280.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

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
    last_conv = ConvNormActSpec(out_channels=1280, kernel_size=1, activation="relu6", width_scaling="at_least_base")
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=32, kernel_size=3, stride=2, activation="relu6"),),
        stages=stages + (StageSpec(blocks=(last_conv,)),),
        head=ClassifierHeadSpec(dropout=0.2),
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        width_multiplier=width_multiplier,
        channel_divisor=8,
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
