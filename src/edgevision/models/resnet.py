"""ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Configuration: Table 1 of the paper. Stem conv1 = 7x7/2, 64 -> 3x3/2 max pool; four stages
conv2_x .. conv5_x with 64, 128, 256, 512 "planes", the first block of conv3_x .. conv5_x with
stride 2; basic blocks (output = planes) for 18/34 layers, bottlenecks (output = 4 x planes) for
50+; global average pool -> 1000-way fc. Layout as the reference PyTorch release (torchvision
``resnet.py``, whose ``_meta`` num_params are resnet18 11689512, resnet34 21797672, resnet50
25557032, resnet101 44549160, resnext50_32x4d 25028904): bottleneck stride on the 3x3 conv
("ResNet v1.5"), projection shortcut (1x1 conv + BN) only where the shape changes, no width
rounding (channel divisor 1).

The stage builder also takes ResNeXt's ``groups`` x ``width_per_group`` (torchvision's bottleneck
width ``int(planes * width_per_group / 64) * groups``), Wide ResNet's wider ``width_per_group``
(``models/wide_resnet.py``), SENet's SE bottleneck with the Caffe stride placement
(``models/senet.py``) and the SKNet-50 unit (``models/sknet.py``), so each of those models is one
registered function.
"""

from __future__ import annotations

from ..blocks import (
    BlockSpec,
    ClassifierHeadSpec,
    ConvNormActSpec,
    MaxPoolSpec,
    ResNetBasicSpec,
    ResNetBottleneckSpec,
    SelectiveKernelSpec,
)
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

# Table 1: (planes, stride of the first block) for conv2_x, conv3_x, conv4_x, conv5_x
_TABLE_1_STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))

# Table 1: blocks per stage
RESNET18_DEPTHS = (2, 2, 2, 2)
RESNET34_DEPTHS = (3, 4, 6, 3)
RESNET50_DEPTHS = (3, 4, 6, 3)
RESNET101_DEPTHS = (3, 4, 23, 3)

BLOCK_KINDS = ("basic", "bottleneck", "selective_kernel")

# 3x3/2 max pool of the stem. torchvision pads 1; the Caffe releases (ResNet, SENet, SKNet) pad 0
# and round up. Same output at even sizes (112 -> 56), different at odd ones.
TORCHVISION_STEM_POOL = MaxPoolSpec(kernel_size=3, stride=2)
CAFFE_STEM_POOL = MaxPoolSpec(kernel_size=3, stride=2, padding="valid", ceil_mode=True)


def resnet_block(
    kind: str,
    planes: int,
    stride: int,
    groups: int = 1,
    width_per_group: int = 64,
    *,
    stride_on: str = "spatial",
    se_reduction: int | None = None,
    basic_block: type[ResNetBasicSpec] = ResNetBasicSpec,
) -> BlockSpec:
    """One block of a ResNet-style stage with ``planes`` base width (Table 1's 64 ... 512).

    ``basic_block`` swaps in a re-parameterizable basic block with the same fields (DBB, RMNet).
    """
    if kind == "basic":
        if groups != 1 or width_per_group != 64:
            raise ValueError(f"basic ResNet blocks have groups=1 and width_per_group=64, got {groups} and {width_per_group}")
        return basic_block(out_channels=planes, stride=stride)
    mid_channels = int(planes * width_per_group / 64) * groups  # 64 for ResNet-50's conv2_x, 128 for 32x4d
    if kind == "bottleneck":
        return ResNetBottleneckSpec(
            out_channels=4 * planes,
            mid_channels=mid_channels,
            stride=stride,
            groups=groups,
            stride_on=stride_on,
            se_reduction=se_reduction,
        )
    if kind == "selective_kernel":
        return SelectiveKernelSpec(out_channels=4 * planes, mid_channels=mid_channels, stride=stride, groups=groups)
    raise ValueError(f"resnet block kind must be one of {', '.join(BLOCK_KINDS)}, got {kind!r}")


def resnet(
    name: str,
    block: str,
    depths: tuple[int, int, int, int],
    groups: int = 1,
    width_per_group: int = 64,
    *,
    stride_on: str = "spatial",
    se_reduction: int | None = None,
    stem_pool: MaxPoolSpec = TORCHVISION_STEM_POOL,
    basic_block: type[ResNetBasicSpec] = ResNetBasicSpec,
) -> NetworkSpec:
    """Table 1's network: 7x7/2 conv stem, 3x3/2 max pool, four stages, global pool, 1000-way fc."""
    stages = tuple(
        StageSpec.repeat(
            resnet_block(
                block, planes, stride, groups, width_per_group, stride_on=stride_on, se_reduction=se_reduction, basic_block=basic_block
            ),
            depth,
        )
        for (planes, stride), depth in zip(_TABLE_1_STAGES, depths, strict=True)
    )
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=64, kernel_size=7, stride=2), stem_pool),
        stages=stages,
        head=ClassifierHeadSpec(),
        width_multiplier=1.0,
        channel_divisor=1,
    )


@register_model("resnet18", family="resnet")
def resnet18() -> NetworkSpec:
    return resnet("resnet18", "basic", RESNET18_DEPTHS)


@register_model("resnet34", family="resnet")
def resnet34() -> NetworkSpec:
    return resnet("resnet34", "basic", RESNET34_DEPTHS)


@register_model("resnet50", family="resnet")
def resnet50() -> NetworkSpec:
    return resnet("resnet50", "bottleneck", RESNET50_DEPTHS)


@register_model("resnet101", family="resnet")
def resnet101() -> NetworkSpec:
    return resnet("resnet101", "bottleneck", RESNET101_DEPTHS)


@register_model("resnext50_32x4d", family="resnext")
def resnext50_32x4d() -> NetworkSpec:
    """ResNeXt-50 (32x4d) (Xie et al., "Aggregated Residual Transformations", CVPR 2017, Table 1):
    ResNet-50's depths, cardinality C = 32 of 4-wide groups, so conv2_x's 3x3 is 128 wide."""
    return resnet("resnext50_32x4d", "bottleneck", RESNET50_DEPTHS, groups=32, width_per_group=4)
