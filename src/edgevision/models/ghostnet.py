"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

Configuration: Table 1 of the paper (overall architecture: #exp, #out, SE, stride per G-bneck), as
written in the authors' PyTorch code (huawei-noah/Efficient-AI-Backbones, ``ghostnet_pytorch/ghostnet.py``,
``cfgs``; timm ``ghostnet.py`` version 1). Widths scale as in that code: every width, the expanded
"#exp" widths included, is make_divisible(c * multiplier, 4); the 960-d last conv scales, the 1280-d
hidden layer of the head does not. SE: reduced width make_divisible(#exp / 4, 4), ReLU, hard-sigmoid gate.
Published results (Table 7): 0.5x 42M MACs / 2.6M params / 66.2% top-1, 1.0x 141M / 5.2M / 73.9%,
1.3x 226M / 7.3M / 75.7%.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, GhostBottleneckSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model


def _g(k: int, exp: int, c: int, se: bool, s: int) -> GhostBottleneckSpec:
    return GhostBottleneckSpec(out_channels=c, mid_channels=exp, kernel_size=k, stride=s, se_ratio=0.25 if se else 0.0)


def _stage(*blocks: GhostBottleneckSpec | ConvNormActSpec) -> StageSpec:
    return StageSpec(blocks=blocks)


# Table 1: rows (kernel, #exp, #out, SE, stride); stages grouped as in the authors' ``cfgs``
_TABLE_1 = (
    _stage(_g(3, 16, 16, False, 1)),
    _stage(_g(3, 48, 24, False, 2)),
    _stage(_g(3, 72, 24, False, 1)),
    _stage(_g(5, 72, 40, True, 2)),
    _stage(_g(5, 120, 40, True, 1)),
    _stage(_g(3, 240, 80, False, 2)),
    _stage(
        _g(3, 200, 80, False, 1),
        _g(3, 184, 80, False, 1),
        _g(3, 184, 80, False, 1),
        _g(3, 480, 112, True, 1),
        _g(3, 672, 112, True, 1),
    ),
    _stage(_g(5, 672, 160, True, 2)),
    _stage(_g(5, 960, 160, False, 1), _g(5, 960, 160, True, 1), _g(5, 960, 160, False, 1), _g(5, 960, 160, True, 1)),
    _stage(ConvNormActSpec(out_channels=960, kernel_size=1, activation="relu")),
)


def ghostnet(name: str, width_multiplier: float) -> NetworkSpec:
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=16, kernel_size=3, stride=2, activation="relu"),),
        stages=_TABLE_1,
        head=ClassifierHeadSpec(hidden_features=1280, hidden_activation="relu", hidden_width_scaling="fixed", dropout=0.2),
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        width_multiplier=width_multiplier,
        channel_divisor=4,
    )


@register_model("ghostnet_050", family="ghostnet")
def ghostnet_050() -> NetworkSpec:
    return ghostnet("ghostnet_050", 0.5)


@register_model("ghostnet_100", family="ghostnet")
def ghostnet_100() -> NetworkSpec:
    return ghostnet("ghostnet_100", 1.0)


@register_model("ghostnet_130", family="ghostnet")
def ghostnet_130() -> NetworkSpec:
    return ghostnet("ghostnet_130", 1.3)
