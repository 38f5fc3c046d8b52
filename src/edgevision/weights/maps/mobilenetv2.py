"""MobileNetV2 (Sandler et al. 2018).

torchvision numbers blocks across stages (``features.N``, stem = 0, last 1x1 conv = 18); inside a
block ``conv.0`` is the expansion ConvBNReLU, except in the first block (expansion 1), which starts
at the depthwise one. timm's is its EfficientNet builder layout (:mod:`.efficientnet_timm`) with
the last 1x1 conv as ``conv_head/bn2``.
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear
from .efficientnet_timm import LAST_STAGE_IS_HEAD, timm_efficientnet_rules

_B = r"stages\.(\d+)\.(\d+)"
_TV_UP = {"mobilenetv2_100": "mobilenet_v2"}
TORCHVISION = KeyMap(
    "torchvision",
    (
        *conv_bn(r"stem\.0", "features.0.0", "features.0.1"),
        *conv_bn(r"stages\.0\.0\.depthwise", "features.1.conv.0.0", "features.1.conv.0.1"),
        *conv_bn(r"stages\.0\.0\.project", "features.1.conv.1", "features.1.conv.2"),
        *conv_bn(rf"{_B}\.expand", "features.{flat(1,2)+1}.conv.0.0", "features.{flat(1,2)+1}.conv.0.1"),
        *conv_bn(rf"{_B}\.depthwise", "features.{flat(1,2)+1}.conv.1.0", "features.{flat(1,2)+1}.conv.1.1"),
        *conv_bn(rf"{_B}\.project", "features.{flat(1,2)+1}.conv.2", "features.{flat(1,2)+1}.conv.3"),
        *conv_bn(rf"{_B}", "features.{flat(1,2)+1}.0", "features.{flat(1,2)+1}.1"),  # the last 1x1 conv (a stage of its own)
        *linear(r"head\.classifier", "classifier.1"),
    ),
    upstream=_TV_UP,
)
TIMM = KeyMap(
    "timm",
    timm_efficientnet_rules(head_conv=LAST_STAGE_IS_HEAD),
    upstream={"mobilenetv2_050": "mobilenetv2_050", "mobilenetv2_100": "mobilenetv2_100", "mobilenetv2_140": "mobilenetv2_140"},
)
KEYMAPS = {"mobilenetv2": {"torchvision": TORCHVISION, "timm": TIMM}}
