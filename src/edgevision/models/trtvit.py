"""TRT-ViT (Xia et al., "TRT-ViT: TensorRT-oriented Vision Transformer", arXiv 2205.09579, 2022).

Layout from the paper's guidelines (Sec. 3): convolution stages early, Transformer stages late
(guideline 1); shallow early stages, deep late stages (guideline 2); late stages of mixed blocks,
Transformer and BottleNeck in one block (guideline 3), attention first and convolution after
(guideline 4). Stages 1-2: ResNet BottleNeck blocks (torchvision layout, ``ResNetBottleneckSpec``);
stages 3-4: ``TRTViTMixBlockSpec`` (blocks/trtvit.py); the first block of stages 2-4 has stride 2.

RECONSTRUCTED, NOT THE PAPER'S TABLE: the architecture table of TRT-ViT-A/B/C/D (widths, depths,
heads, spatial-reduction ratios) was not available to us and the authors released no code. The
four variants below follow the guidelines with our own widths and depths (ResNet-50's stage widths
256/512/1024/2048; shallow-to-deep depths; head dim 64; mix ratio 0.5; sr 2 at 1/16, 1 at 1/32;
Next-ViT's TensorRT-friendly 3x3 stem by the same group). Their parameter and MAC counts are
therefore NOT checked against the paper's printed figures (published.csv has none for them); replace
the table below with the paper's when it is at hand. Searched again for it (2026-12-01): the stored
copy of the paper (ar5iv 2205.09579) yields its abstract and introduction only, the authors released
no code, and the third-party code found (CrazyAra's ``trt_vit.py``) is an adaptation to chess boards
with its own sizes, so it cannot stand in for the table.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ResNetBottleneckSpec, TRTViTMixBlockSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model
from .nextvit import nextvit_stem

WIDTHS = (256, 512, 1024, 2048)  # stage outputs; BottleNeck width = output / 4 in stages 1-2
SR_RATIOS = (2, 1)  # spatial reduction of the attention in stages 3 (1/16) and 4 (1/32)

# our reconstruction: depths per stage (shallow early, deep late)
_DEPTHS = {
    "trtvit_a": (2, 2, 4, 2),
    "trtvit_b": (2, 3, 6, 3),
    "trtvit_c": (3, 4, 9, 3),
    "trtvit_d": (3, 4, 18, 4),
}


def trtvit(name: str, depths: tuple[int, int, int, int]) -> NetworkSpec:
    conv_stages = tuple(
        StageSpec.repeat(ResNetBottleneckSpec(out_channels=width, mid_channels=width // 4, stride=stride), depth)
        for width, depth, stride in zip(WIDTHS[:2], depths[:2], (1, 2))
    )
    mixed_stages = tuple(
        StageSpec.repeat(TRTViTMixBlockSpec(out_channels=width, stride=2, head_dim=64, sr_ratio=sr), depth)
        for width, depth, sr in zip(WIDTHS[2:], depths[2:], SR_RATIOS)
    )
    return NetworkSpec(name=name, stem=nextvit_stem(), stages=conv_stages + mixed_stages, head=ClassifierHeadSpec(), channel_divisor=8)


@register_model("trtvit_a", family="trtvit")
def trtvit_a() -> NetworkSpec:
    return trtvit("trtvit_a", _DEPTHS["trtvit_a"])


@register_model("trtvit_b", family="trtvit")
def trtvit_b() -> NetworkSpec:
    return trtvit("trtvit_b", _DEPTHS["trtvit_b"])


@register_model("trtvit_c", family="trtvit")
def trtvit_c() -> NetworkSpec:
    return trtvit("trtvit_c", _DEPTHS["trtvit_c"])


@register_model("trtvit_d", family="trtvit")
def trtvit_d() -> NetworkSpec:
    return trtvit("trtvit_d", _DEPTHS["trtvit_d"])
