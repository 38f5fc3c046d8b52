"""G-Ghost RegNet (Han et al., "GhostNets on Heterogeneous Devices via Cheap Operations", IJCV 2022).

The GPU design of the GhostNet journal paper (G-GhostNet) applied to RegNetX
(Radosavovic et al. 2020): stages 2-4 of a RegNetX become G-Ghost stages (``blocks/g_ghost.py``)
when they have more than two blocks; stage 1, and stages 2 and 4 with <= 2 blocks, stay plain
RegNet X blocks. The CPU design (C-GhostNet) is the CVPR GhostNet: ``models/ghostnet.py``.

Configurations: the authors' release (huawei-noah/Efficient-AI-Backbones
``g_ghost_pytorch/g_ghost_regnet.py``): depths, widths and group width per model are those of the
RegNetX model of the same size (Radosavovic et al. 2020, as released in pycls: RegNetX-3.2GF,
-4.0GF, -8.0GF, -16GF); stem 3x3/2 conv with 32 channels; stage strides 2, 2, 2, 2;
bottleneck ratio 1; head = global pool -> dropout 0.2 -> fc. Published figures (release README
table, ImageNet top-1 at 224): 3.2G 10.5M 1.8B 77.8; 4.0G 15.7M 2.2B 78.6; 8.0G 24.6M 4.2B 79.0;
16.0G 32.4M 9.0B 79.9 ("FLOPs" there are multiply-accumulates). Those four have released weights
and are registered here.
"""

from __future__ import annotations

from ..blocks import BlockSpec, ClassifierHeadSpec, ConvNormActSpec, GGhostStageSpec, RegNetXBlockSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

# Release ``g_ghost_regnetx_*``: name -> (blocks per stage, width per stage, group width)
G_GHOST_REGNETX = {
    "g_ghost_regnetx_032": ((2, 6, 15, 2), (96, 192, 432, 1008), 48),
    "g_ghost_regnetx_040": ((2, 5, 14, 2), (80, 240, 560, 1360), 40),
    "g_ghost_regnetx_080": ((2, 5, 15, 1), (80, 240, 720, 1920), 120),
    "g_ghost_regnetx_160": ((2, 6, 13, 1), (256, 512, 896, 2048), 128),
}

STEM_CHANNELS = 32


def _plain_stage(width: int, depth: int, group_width: int) -> StageSpec:
    return StageSpec.repeat(RegNetXBlockSpec(out_channels=width, group_width=group_width, stride=2), depth)


def _stage(index: int, width: int, depth: int, group_width: int) -> StageSpec:
    """Stage 3 (index 2) is always a G-Ghost stage; stages 2 and 4 only with more than two blocks."""
    if index == 0 or (index in (1, 3) and depth <= 2):
        return _plain_stage(width, depth, group_width)
    block: BlockSpec = GGhostStageSpec.from_regnetx(width, depth, group_width, stride=2, cheap_ratio=0.5)
    return StageSpec(blocks=(block,))


def g_ghost_regnetx(name: str) -> NetworkSpec:
    depths, widths, group_width = G_GHOST_REGNETX[name]
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=STEM_CHANNELS, kernel_size=3, stride=2),),
        stages=tuple(_stage(i, w, d, group_width) for i, (w, d) in enumerate(zip(widths, depths, strict=True))),
        head=ClassifierHeadSpec(dropout=0.2),
        channel_divisor=1,  # RegNet widths are already multiples of the group width: no rounding
    )


@register_model("g_ghost_regnetx_032", family="g_ghost_regnet")
def g_ghost_regnetx_032() -> NetworkSpec:
    return g_ghost_regnetx("g_ghost_regnetx_032")


@register_model("g_ghost_regnetx_040", family="g_ghost_regnet")
def g_ghost_regnetx_040() -> NetworkSpec:
    return g_ghost_regnetx("g_ghost_regnetx_040")


@register_model("g_ghost_regnetx_080", family="g_ghost_regnet")
def g_ghost_regnetx_080() -> NetworkSpec:
    return g_ghost_regnetx("g_ghost_regnetx_080")


@register_model("g_ghost_regnetx_160", family="g_ghost_regnet")
def g_ghost_regnetx_160() -> NetworkSpec:
    return g_ghost_regnetx("g_ghost_regnetx_160")
