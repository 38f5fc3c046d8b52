"""Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

``wrn_28_10``: the CIFAR network of Table 1 with depth 28 (n = (28 - 4) / 6 = 4 blocks per group)
and widening factor k = 10, as in the authors' release (``models/wide-resnet.lua``,
``pytorch/resnet.py``): 3x3 conv 3 -> 16 (no BN, no bias), three groups of pre-activation B(3,3)
blocks 16k = 160, 32k = 320, 64k = 640 wide at 32x32, 16x16, 8x8 (first block of groups 2 and 3
with stride 2), BN-ReLU, 8x8 average pool, fc with bias. 32x32 input, 10 classes by default
(CIFAR-10); the paper's 36.5M parameters are at 10 classes (36,479,194 by the release's layout).

``wide_resnet50_2``: the ImageNet WRN-50-2-bottleneck of the same paper (Sec. 4, ImageNet
experiments: ResNet-50 with bottlenecks twice as wide) in torchvision's layout,
``width_per_group = 128`` (``_meta`` num_params 68883240, 11.4 GFLOPS).

The zoo counts every model at 1000 classes (``create_model``'s default), so the registry's exact
count for ``wrn_28_10`` is 37,113,784 (the same layout with a 1000-way fc); the spec itself keeps
the paper's 10 classes.
"""

from __future__ import annotations

from ..blocks import BareConvSpec, ClassifierHeadSpec, NormActSpec, WideBasicSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model
from .resnet import RESNET50_DEPTHS, resnet

# Table 1 (CIFAR): (base width before widening, stride of the first block) for conv2, conv3, conv4
_TABLE_1_GROUPS = ((16, 1), (32, 2), (64, 2))
CIFAR_STEM_CHANNELS = 16  # conv1: 3x3, 16 (not widened)


def wide_resnet_cifar(name: str, depth: int, widen_factor: int, num_classes: int = 10, dropout: float = 0.0) -> NetworkSpec:
    """WRN-``depth``-``widen_factor`` for 32x32 inputs (Table 1)."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"Wide ResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
    if widen_factor < 1:
        raise ValueError(f"Wide ResNet widen_factor must be >= 1, got {widen_factor}")
    blocks_per_group = (depth - 4) // 6
    stages = tuple(
        StageSpec.repeat(WideBasicSpec(out_channels=width * widen_factor, stride=stride, dropout=dropout), blocks_per_group)
        for width, stride in _TABLE_1_GROUPS
    )
    # the final BN-ReLU before pooling belongs to the last group's output
    last = stages[-1]
    stages = stages[:-1] + (StageSpec(blocks=last.blocks + (NormActSpec(),)),)
    return NetworkSpec(
        name=name,
        stem=(BareConvSpec(out_channels=CIFAR_STEM_CHANNELS, kernel_size=3),),
        stages=stages,
        head=ClassifierHeadSpec(num_classes=num_classes),
        width_multiplier=1.0,
        channel_divisor=1,
        input_size=32,
    )


@register_model("wrn_28_10", family="wide_resnet")
def wrn_28_10() -> NetworkSpec:
    return wide_resnet_cifar("wrn_28_10", depth=28, widen_factor=10)


@register_model("wide_resnet50_2", family="wide_resnet")
def wide_resnet50_2() -> NetworkSpec:
    return resnet("wide_resnet50_2", "bottleneck", RESNET50_DEPTHS, width_per_group=128)
