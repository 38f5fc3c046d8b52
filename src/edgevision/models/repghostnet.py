"""RepGhostNet (Chen et al., "RepGhost: A Hardware-Efficient Ghost Module via Re-parameterization", 2022).

Configuration: the paper's architecture table (GhostNet's layout with RepGhost bottlenecks and
halved "#mid" widths), as written in the authors' code (ChengpengChen/RepGhost, ``model/repghost.py``,
``repghostnet``): kernel, #mid, #out, SE 0.25, stride per bottleneck; every width, #mid included, is
make_divisible(c * multiplier, 4); the last 1x1 conv is 2 x the last #mid (960) and scales; the 1280-d
hidden layer of the head does not. Every RepGhost module has a BatchNorm re-parameterization branch
(``reparam_bn=True``, ``reparam_identity=False``) and every bottleneck its shortcut (``shortcut=True``).
Published results (repo README table = paper's ImageNet table; params/MACs counted without BN):
0.5x 2.3M / 43M / 66.9%, 1.0x 4.1M / 142M / 74.2%, 1.5x 6.6M / 301M / 77.5%, 2.0x 9.8M / 516M / 78.8%.
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, RepGhostBottleneckSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model


def _rg(k: int, mid: int, c: int, se: bool, s: int) -> RepGhostBottleneckSpec:
    return RepGhostBottleneckSpec(out_channels=c, mid_channels=mid, kernel_size=k, stride=s, se_ratio=0.25 if se else 0.0)


def _stage(*blocks: RepGhostBottleneckSpec | ConvNormActSpec) -> StageSpec:
    return StageSpec(blocks=blocks)


# rows (kernel, #mid, #out, SE, stride); stages grouped as in the authors' ``cfgs``
_ARCHITECTURE = (
    _stage(_rg(3, 8, 16, False, 1)),
    _stage(_rg(3, 24, 24, False, 2)),
    _stage(_rg(3, 36, 24, False, 1)),
    _stage(_rg(5, 36, 40, True, 2)),
    _stage(_rg(5, 60, 40, True, 1)),
    _stage(_rg(3, 120, 80, False, 2)),
    _stage(
        _rg(3, 100, 80, False, 1),
        _rg(3, 120, 80, False, 1),
        _rg(3, 120, 80, False, 1),
        _rg(3, 240, 112, True, 1),
        _rg(3, 336, 112, True, 1),
    ),
    _stage(_rg(5, 336, 160, True, 2)),
    _stage(_rg(5, 480, 160, False, 1), _rg(5, 480, 160, True, 1), _rg(5, 480, 160, False, 1), _rg(5, 480, 160, True, 1)),
    _stage(ConvNormActSpec(out_channels=960, kernel_size=1, activation="relu")),
)


def repghostnet(name: str, width_multiplier: float) -> NetworkSpec:
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=16, kernel_size=3, stride=2, activation="relu"),),
        stages=_ARCHITECTURE,
        head=ClassifierHeadSpec(hidden_features=1280, hidden_activation="relu", hidden_width_scaling="fixed", dropout=0.2),
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        width_multiplier=width_multiplier,
        channel_divisor=4,
    )


@register_model("repghostnet_050", family="repghostnet")
def repghostnet_050() -> NetworkSpec:
    return repghostnet("repghostnet_050", 0.5)


@register_model("repghostnet_100", family="repghostnet")
def repghostnet_100() -> NetworkSpec:
    return repghostnet("repghostnet_100", 1.0)


@register_model("repghostnet_150", family="repghostnet")
def repghostnet_150() -> NetworkSpec:
    return repghostnet("repghostnet_150", 1.5)


@register_model("repghostnet_200", family="repghostnet")
def repghostnet_200() -> NetworkSpec:
    return repghostnet("repghostnet_200", 2.0)
