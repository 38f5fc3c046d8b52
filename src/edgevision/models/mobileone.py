"""MobileOne (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023).

Configuration: Table 7 of the paper (stages, widths 64/128/256/512 times the per-variant
multipliers, over-parameterization factor k, SE-ReLU), as built by the authors' ``mobileone.py``
(apple/ml-mobileone, ``PARAMS`` and ``MobileOne``):

- stem: one 3x3 stride-2 layer 3 -> min(64, int(64 * w1)) with a single conv branch (the authors'
  code builds it without ``num_conv_branches``, so even S0's stem has k = 1);
- four stages of 2, 8, 10, 1 MobileOne blocks (Table 7 splits the 10 into stages 4 and 5 of
  5 blocks each), the first of each stage with stride 2; a block is a depthwise 3x3 layer
  (carrying the stride) followed by a pointwise 1x1 layer, each with k conv branches;
- S4 only: squeeze-excite (reduction 16) in both layers of the last 5 blocks of the 10-block stage
  and of the last stage (Table 7's stages 5 and 6; ``num_se_blocks`` in the authors' code);
- global average pooling and a linear classifier.

Widths are the authors' ``int(64 * w)`` etc., written as exact channel counts (``channel_divisor=1``).
Published (Table 8, deploy form): S0 2.1M params, 275M MACs, 71.4% top-1; S1 4.8M, 825M, 75.9%;
S2 7.8M, 1299M, 77.4%; S3 10.1M, 1896M, 78.1%; S4 14.8M, 2978M, 79.4%.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, MobileOneConvSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

_DEPTHS = (2, 8, 10, 1)
_BASE_WIDTHS = (64, 128, 256, 512)
_SE_RATIO = 1 / 16  # the authors' SEBlock rd_ratio = 0.0625

# Table 7: width multipliers (w1, w2, w3, w4), over-parameterization factor k, SE-ReLU
_VARIANTS = {
    "s0": ((0.75, 1.0, 1.0, 2.0), 4, False),
    "s1": ((1.5, 1.5, 2.0, 2.5), 1, False),
    "s2": ((1.5, 2.0, 2.5, 4.0), 1, False),
    "s3": ((2.0, 2.5, 3.0, 4.0), 1, False),
    "s4": ((3.0, 3.5, 3.5, 4.0), 1, True),
}


def _stage(in_channels: int, out_channels: int, depth: int, branches: int, se_blocks: int) -> StageSpec:
    """``depth`` MobileOne blocks (depthwise 3x3 + pointwise 1x1); SE in the last ``se_blocks`` of them."""
    layers: list[MobileOneConvSpec] = []
    for index in range(depth):
        se_ratio = _SE_RATIO if index >= depth - se_blocks else 0.0
        common = dict(num_conv_branches=branches, se_ratio=se_ratio)
        stride = 2 if index == 0 else 1
        layers.append(MobileOneConvSpec(out_channels=in_channels, kernel_size=3, stride=stride, depthwise=True, **common))
        layers.append(MobileOneConvSpec(out_channels=out_channels, kernel_size=1, **common))
        in_channels = out_channels
    return StageSpec(blocks=tuple(layers))


def mobileone(variant: str) -> NetworkSpec:
    multipliers, branches, use_se = _VARIANTS[variant]
    widths = tuple(int(base * m) for base, m in zip(_BASE_WIDTHS, multipliers))
    se_blocks = (0, 0, _DEPTHS[2] // 2, _DEPTHS[3]) if use_se else (0, 0, 0, 0)
    stem_channels = min(64, widths[0])
    stages, channels = [], stem_channels
    for out_channels, depth, se in zip(widths, _DEPTHS, se_blocks):
        stages.append(_stage(channels, out_channels, depth, branches, se))
        channels = out_channels
    return NetworkSpec(
        name=f"mobileone_{variant}",
        stem=(MobileOneConvSpec(out_channels=stem_channels, kernel_size=3, stride=2),),
        stages=tuple(stages),
        head=ClassifierHeadSpec(),
        width_multiplier=1.0,
        channel_divisor=1,
    )


@register_model("mobileone_s0", family="mobileone")
def mobileone_s0() -> NetworkSpec:
    return mobileone("s0")


@register_model("mobileone_s1", family="mobileone")
def mobileone_s1() -> NetworkSpec:
    return mobileone("s1")


@register_model("mobileone_s2", family="mobileone")
def mobileone_s2() -> NetworkSpec:
    return mobileone("s2")


@register_model("mobileone_s3", family="mobileone")
def mobileone_s3() -> NetworkSpec:
    return mobileone("s3")


@register_model("mobileone_s4", family="mobileone")
def mobileone_s4() -> NetworkSpec:
    return mobileone("s4")
