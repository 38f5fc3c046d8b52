"""DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

``densenet121``: Table 1, DenseNet-BC with growth rate k = 32: 7x7/2 conv 64 + BN + ReLU, 3x3/2
max pool; dense blocks of 6, 12, 24, 16 layers (1x1 conv 4k -> 3x3 conv k), a transition layer
(1x1 conv to half the width, 2x2/2 average pool) after each of the first three; BN-ReLU, global
average pool, 1000-way fc. Layout as the reference PyTorch release (torchvision ``densenet.py``,
``_meta`` num_params 7978856, 2.83 GFLOPS).
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, DenseLayerSpec, DenseTransitionSpec, MaxPoolSpec, NormActSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

# Table 1: layers per dense block
DENSENET121_BLOCKS = (6, 12, 24, 16)


def densenet(
    name: str,
    block_depths: tuple[int, ...],
    growth_rate: int = 32,
    stem_channels: int = 64,
    bottleneck_factor: int = 4,
    compression: float = 0.5,
) -> NetworkSpec:
    """One stage per dense block; stages 1 .. n-1 end with a transition, the last with BN-ReLU."""
    layer = DenseLayerSpec(growth_rate=growth_rate, bottleneck_channels=bottleneck_factor * growth_rate)
    stages = []
    for index, depth in enumerate(block_depths):
        last_stage = index == len(block_depths) - 1
        closing = NormActSpec() if last_stage else DenseTransitionSpec(compression=compression)
        stages.append(StageSpec(blocks=(layer,) * depth + (closing,)))
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=stem_channels, kernel_size=7, stride=2), MaxPoolSpec(kernel_size=3, stride=2)),
        stages=tuple(stages),
        head=ClassifierHeadSpec(),
        width_multiplier=1.0,
        channel_divisor=1,
    )


@register_model("densenet121", family="densenet")
def densenet121() -> NetworkSpec:
    return densenet("densenet121", DENSENET121_BLOCKS)
