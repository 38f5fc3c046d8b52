"""MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019).

Configuration: Table 1 (Large) and Table 2 (Small) of the paper, written as expansion ratios the
way the authors' TF code and timm's ``mobilenetv3_*`` do (72/24 = 3, 184/80 = 2.3, ...), so the
0.75x models scale exactly as those references: widths make_divisible(c * multiplier, 8),
expanded width make_divisible(C_in * ratio, 8), SE width make_divisible(expanded / 4, 8).
Stem (16) scales with the multiplier; the 1280 (Large) / 1024 (Small) head does not.
BatchNorm eps 1e-3: the authors' TF release (tensorflow/models ``slim/nets/mobilenet``, whose
``slim.batch_norm`` defaults to epsilon 0.001), as torchvision's ``mobilenet_v3_*``. timm's own
PyTorch-trained ``mobilenetv3_*`` use 1e-5: importing them carries that eps into the spec
(``NetworkSpec.norm_eps``, docs/pretrained.md), so both give their library's feature maps.
"""

from __future__ import annotations

from ..blocks import InvertedResidualSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model
from .mobile_skeleton import mobile_network


def _ir(c: int, k: int, s: int, e: float, se: bool, act: str) -> InvertedResidualSpec:
    return InvertedResidualSpec(
        out_channels=c, kernel_size=k, stride=s, expansion_ratio=e, se_ratio=0.25 if se else 0.0, activation=act
    )


def _stage(*blocks: InvertedResidualSpec) -> StageSpec:
    return StageSpec(blocks=blocks)


RE, HS = "relu", "hard_swish"
TF_BATCHNORM_EPS = 1e-3  # slim.batch_norm's default epsilon, used by the release

# Table 1 (Large): rows (out c, kernel, stride, expansion, SE, activation); one stage per resolution step
_LARGE = (
    _stage(_ir(16, 3, 1, 1, False, RE)),
    _stage(_ir(24, 3, 2, 4, False, RE), _ir(24, 3, 1, 3, False, RE)),
    _stage(*[_ir(40, 5, s, 3, True, RE) for s in (2, 1, 1)]),
    _stage(_ir(80, 3, 2, 6, False, HS), _ir(80, 3, 1, 2.5, False, HS), _ir(80, 3, 1, 2.3, False, HS), _ir(80, 3, 1, 2.3, False, HS)),
    _stage(_ir(112, 3, 1, 6, True, HS), _ir(112, 3, 1, 6, True, HS)),
    _stage(*[_ir(160, 5, s, 6, True, HS) for s in (2, 1, 1)]),
)  # then the 1x1 conv to 960 (mobile_network's last conv)

# Table 2 (Small)
_SMALL = (
    _stage(_ir(16, 3, 2, 1, True, RE)),
    _stage(_ir(24, 3, 2, 4.5, False, RE), _ir(24, 3, 1, 3.67, False, RE)),
    _stage(_ir(40, 5, 2, 4, True, HS), _ir(40, 5, 1, 6, True, HS), _ir(40, 5, 1, 6, True, HS)),
    _stage(_ir(48, 5, 1, 3, True, HS), _ir(48, 5, 1, 3, True, HS)),
    _stage(*[_ir(96, 5, s, 6, True, HS) for s in (2, 1, 1)]),
)  # then the 1x1 conv to 576


def mobilenetv3(name: str, stages: tuple[StageSpec, ...], last_channels: int, head_features: int, width_multiplier: float) -> NetworkSpec:
    return mobile_network(
        name,
        stages,
        activation=HS,
        stem_channels=16,
        last_channels=last_channels,
        head_hidden_features=head_features,
        width_multiplier=width_multiplier,
        last_conv_is_feature=True,  # timm's feature_info ends at the 960 (576) conv
    ).with_norm_eps(TF_BATCHNORM_EPS)


@register_model("mobilenetv3_large_075", family="mobilenetv3")
def mobilenetv3_large_075() -> NetworkSpec:
    return mobilenetv3("mobilenetv3_large_075", _LARGE, 960, 1280, 0.75)


@register_model("mobilenetv3_large_100", family="mobilenetv3")
def mobilenetv3_large_100() -> NetworkSpec:
    return mobilenetv3("mobilenetv3_large_100", _LARGE, 960, 1280, 1.0)


@register_model("mobilenetv3_small_075", family="mobilenetv3")
def mobilenetv3_small_075() -> NetworkSpec:
    return mobilenetv3("mobilenetv3_small_075", _SMALL, 576, 1024, 0.75)


@register_model("mobilenetv3_small_100", family="mobilenetv3")
def mobilenetv3_small_100() -> NetworkSpec:
    return mobilenetv3("mobilenetv3_small_100", _SMALL, 576, 1024, 1.0)
