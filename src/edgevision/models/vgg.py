"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015).

Configuration: Table 1 of the paper, columns A (11 weight layers) and D (16 weight layers):
five stages of 3x3 convs (64, 128, 256, 512, 512 channels), each closed by a 2x2 max pool,
then FC-4096, FC-4096, FC-1000. Layout as the reference PyTorch release (torchvision ``vgg.py``):
convs with bias (kept in the BN variants), 7x7 adaptive average pool before the classifier,
dropout 0.5 after both hidden FC layers. torchvision ``_meta`` num_params: vgg11 132863336,
vgg11_bn 132868840, vgg16 138357544, vgg16_bn 138365992 (the paper's Table 2: 133M and 138M).
VGG without BN has nothing to fold: its deploy form is its train form.
"""

from __future__ import annotations

from ..blocks import VGGHeadSpec, VGGStageSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

_STAGE_WIDTHS = (64, 128, 256, 512, 512)  # Table 1: conv3-64 ... conv3-512

# Table 1: convs per stage
VGG11_CONVS = (1, 1, 2, 2, 2)  # configuration A
VGG16_CONVS = (2, 2, 3, 3, 3)  # configuration D


def vgg(name: str, convs_per_stage: tuple[int, ...], batch_norm: bool) -> NetworkSpec:
    stages = tuple(
        StageSpec(blocks=(VGGStageSpec(out_channels=width, num_convs=convs, batch_norm=batch_norm),))
        for width, convs in zip(_STAGE_WIDTHS, convs_per_stage, strict=True)
    )
    return NetworkSpec(
        name=name,
        stem=stages[0].blocks,  # the first stage (conv3-64 + pool) doubles as the stem
        stages=stages[1:],
        head=VGGHeadSpec(),
        channel_divisor=1,
    )


@register_model("vgg11", family="vgg")
def vgg11() -> NetworkSpec:
    return vgg("vgg11", VGG11_CONVS, batch_norm=False)


@register_model("vgg11_bn", family="vgg")
def vgg11_bn() -> NetworkSpec:
    return vgg("vgg11_bn", VGG11_CONVS, batch_norm=True)


@register_model("vgg16", family="vgg")
def vgg16() -> NetworkSpec:
    return vgg("vgg16", VGG16_CONVS, batch_norm=False)


@register_model("vgg16_bn", family="vgg")
def vgg16_bn() -> NetworkSpec:
    return vgg("vgg16_bn", VGG16_CONVS, batch_norm=True)
