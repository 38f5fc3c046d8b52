"""RepVGG (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021).

Configuration: Sec. 3.4 and Table 2 of the paper (layers per stage and widths [64a, 128a, 256a, 512b]),
as built by the authors' ``repvgg.py`` (DingXiaoH/RepVGG, ``create_RepVGG_*``): a stem block
3 -> min(64, 64a) with stride 2, four stages whose first block has stride 2, global average
pooling and a linear classifier. Every layer is a RepVGG block (3x3 + 1x1 + identity, ReLU);
in deploy form each is one 3x3 conv with bias. Widths are the authors' ``int(64 * a)`` etc.,
written as exact channel counts (``channel_divisor=1``).

Published (Table 4, deploy form): A0 8.30M params, 1.4G MACs ("FLOPs"), 72.41% top-1;
A1 12.78M, 2.4G, 74.46%; B0 14.33M, 3.1G, 75.14%.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, RepVGGBlockSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

# Table 2: layers of stages 1-5 (stage 1 is the stem block); RepVGG-A: 1, 2, 4, 14, 1; RepVGG-B: 1, 4, 6, 16, 1
_DEPTHS_A = (2, 4, 14, 1)
_DEPTHS_B = (4, 6, 16, 1)
_BASE_WIDTHS = (64, 128, 256, 512)


def repvgg(name: str, depths: tuple[int, ...], a: float, b: float) -> NetworkSpec:
    widths = tuple(int(base * m) for base, m in zip(_BASE_WIDTHS, (a, a, a, b)))
    stages = tuple(StageSpec.repeat(RepVGGBlockSpec(out_channels=c, stride=2), n) for c, n in zip(widths, depths))
    return NetworkSpec(
        name=name,
        stem=(RepVGGBlockSpec(out_channels=min(64, int(64 * a)), stride=2),),
        stages=stages,
        head=ClassifierHeadSpec(),
        width_multiplier=1.0,
        channel_divisor=1,
    )


@register_model("repvgg_a0", family="repvgg")
def repvgg_a0() -> NetworkSpec:
    return repvgg("repvgg_a0", _DEPTHS_A, a=0.75, b=2.5)


@register_model("repvgg_a1", family="repvgg")
def repvgg_a1() -> NetworkSpec:
    return repvgg("repvgg_a1", _DEPTHS_A, a=1.0, b=2.5)


@register_model("repvgg_b0", family="repvgg")
def repvgg_b0() -> NetworkSpec:
    return repvgg("repvgg_b0", _DEPTHS_B, a=1.0, b=2.5)
