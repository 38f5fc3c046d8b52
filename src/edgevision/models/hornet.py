"""HorNet (Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive Gated
Convolutions", NeurIPS 2022).

Configuration: the paper's model definitions (HorNet-T/S: base width C = 64 / 96, stage widths
C, 2C, 4C, 8C, depths 2, 3, 18, 2, gⁿConv orders 2, 3, 4, 5, s = 1/3) as released in the authors'
code (raoyongming/HorNet ``hornet.py``: ``hornet_tiny_7x7``, ``hornet_small_7x7``): 7x7 depthwise
convs in every stage (the GF variants' global filters are not built), patchify stem 4x4/4 + LN,
LN + 2x2/2 conv between stages, pool -> LN -> fc head. Published (release README, ImageNet-1k,
224): HorNet-T 7x7 22M params, 4.0G FLOPs (multiply-accumulates), 82.8%; HorNet-S 7x7 50M, 8.8G, 84.0%.
Drop path (stochastic depth, a training regulariser) is not built.
"""

from __future__ import annotations

from ..blocks import HorNetBlockSpec, HorNetDownsampleSpec, HorNetHeadSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

DEPTHS = (2, 3, 18, 2)  # HorNet-T/S/B/L
ORDERS = (2, 3, 4, 5)  # gⁿConv order per stage
STEM_PATCH = 4


def hornet(name: str, base_width: int) -> NetworkSpec:
    widths = tuple(base_width * 2**i for i in range(4))
    stages = tuple(
        StageSpec(
            blocks=((HorNetDownsampleSpec(out_channels=width, stride=2, norm_first=True),) if index else ())
            + (HorNetBlockSpec(out_channels=width, order=order),) * depth
        )
        for index, (width, depth, order) in enumerate(zip(widths, DEPTHS, ORDERS, strict=True))
    )
    return NetworkSpec(
        name=name,
        stem=(HorNetDownsampleSpec(out_channels=base_width, stride=STEM_PATCH, norm_first=False),),
        stages=stages,
        head=HorNetHeadSpec(),
        channel_divisor=8,
    )


@register_model("hornet_tiny_7x7", family="hornet")
def hornet_tiny_7x7() -> NetworkSpec:
    return hornet("hornet_tiny_7x7", base_width=64)


@register_model("hornet_small_7x7", family="hornet")
def hornet_small_7x7() -> NetworkSpec:
    return hornet("hornet_small_7x7", base_width=96)
