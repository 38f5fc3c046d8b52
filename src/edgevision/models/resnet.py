"""ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Configuration: Table 1 of the paper. Stem conv1 = 7x7/2, 64 -> 3x3/2 max pool; four stages
conv2_x .. conv5_x with 64, 128, 256, 512 "planes", the first block of conv3_x .. conv5_x with
stride 2; basic blocks (output = planes) for 18/34 layers, bottlenecks (output = 4 x planes) for
50+; global average pool -> 1000-way fc. Layout as the reference PyTorch release (torchvision
``resnet.py``, whose ``_meta`` num_params are resnet18 11689512, resnet50 25557032): bottleneck
stride on the 3x3 conv ("ResNet v1.5"), projection shortcut (1x1 conv + BN) only where the shape
changes, no width rounding (channel divisor 1).

The stage builder also takes ResNeXt's ``groups`` x ``width_per_group`` (torchvision's bottleneck
width ``int(planes * width_per_group / 64) * groups``), Wide ResNet's wider ``width_per_group``,
and the SKNet-50 unit (Li et al. 2019, Table 1: ResNeXt-50 32x4d with SK convs), so those models
are one registered function each.
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
RESNET50_DEPTHS = (3, 4, 6, 3)

BLOCK_KINDS = ("basic", "bottleneck", "selective_kernel")


def resnet_block(kind: str, planes: int, stride: int, groups: int = 1, width_per_group: int = 64) -> BlockSpec:
    """One block of a ResNet-style stage with ``planes`` base width (Table 1's 64 ... 512)."""
    if kind == "basic":
        if groups != 1 or width_per_group != 64:
            raise ValueError(f"basic ResNet blocks have groups=1 and width_per_group=64, got {groups} and {width_per_group}")
        return ResNetBasicSpec(out_channels=planes, stride=stride)
    mid_channels = int(planes * width_per_group / 64) * groups  # 64 for ResNet-50's conv2_x, 128 for 32x4d
    if kind == "bottleneck":
        return ResNetBottleneckSpec(out_channels=4 * planes, mid_channels=mid_channels, stride=stride, groups=groups)
    if kind == "selective_kernel":
        return SelectiveKernelSpec(out_channels=4 * planes, mid_channels=mid_channels, stride=stride, groups=groups)
    raise ValueError(f"resnet block kind must be one of {', '.join(BLOCK_KINDS)}, got {kind!r}")


def resnet(
    name: str, block: str, depths: tuple[int, int, int, int], groups: int = 1, width_per_group: int = 64
) -> NetworkSpec:
    stages = tuple(
        StageSpec.repeat(resnet_block(block, planes, stride, groups, width_per_group), depth)
        for (planes, stride), depth in zip(_TABLE_1_STAGES, depths, strict=True)
    )
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=64, kernel_size=7, stride=2), MaxPoolSpec(kernel_size=3, stride=2)),
        stages=stages,
        head=ClassifierHeadSpec(),
        width_multiplier=1.0,
        channel_divisor=1,
    )


@register_model("resnet18", family="resnet")
def resnet18() -> NetworkSpec:
    return resnet("resnet18", "basic", RESNET18_DEPTHS)


@register_model("resnet50", family="resnet")
def resnet50() -> NetworkSpec:
    return resnet("resnet50", "bottleneck", RESNET50_DEPTHS)
